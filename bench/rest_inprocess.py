"""REST cost per request inside one process (load-insensitive companion of bench/rest_bench.py).

Boots Django with the benchmark's production-like settings (DEBUG off, PostgreSQL `zz_rest_bench`,
Redis DB 4, LOG_FORMAT=json, Prometheus in multiprocess mode as under gunicorn, CONN_MAX_AGE=60),
and sends N requests per endpoint through the real WSGI handler (every middleware, the URLconf,
DRF, JWT/session auth, throttle, rendering) on one thread, as a2wsgi's pool thread does. Per
endpoint it prints the CPU time per request (time.process_time: this process's CPU only, so other
load on the machine barely moves it; PostgreSQL's and Redis' own CPU is not in it), the wall time,
the SQL queries and the response size; --profile adds a pyinstrument (or cProfile) breakdown.

    python bench/rest_inprocess.py [-n 2000] [--endpoints balance,me] [--profile] [--cprofile]

Seeds the same user as rest_bench.py (its `prepare`). Log lines go to stderr (2>/dev/null).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rest_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000, help="requests per endpoint (after 200 warm-up)")
    parser.add_argument("--endpoints", default=",".join(rest_bench.ENDPOINTS))
    parser.add_argument("--profile", action="store_true", help="pyinstrument breakdown per endpoint")
    parser.add_argument("--cprofile", action="store_true", help="cProfile top functions per endpoint")
    parser.add_argument("--top", type=int, default=60, help="cProfile rows")
    parser.add_argument("--no-seed", action="store_true", help="reuse the seeded user (faster start)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{rest_bench.DB_NAME}"
        ),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"))
    args = parser.parse_args()
    args.conn_max_age = 60
    env = rest_bench.bench_env(args)
    auth = rest_bench.prepare(env, args.database_url) if not args.no_seed else None
    os.environ.update(env)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="zz-inproc-prom-")
    os.chdir(ROOT)

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")
    django.setup(set_prefix=False)
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    if auth is None:
        auth = _auth_from_db()
    app = get_wsgi_application()

    def environ(path: str, headers: dict) -> dict:
        env = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8147",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "HTTP_HOST": "127.0.0.1:8147",
            "HTTP_ACCEPT": "*/*",
            "HTTP_USER_AGENT": "wrk",
        }
        for key, value in headers.items():
            env["HTTP_" + key.upper().replace("-", "_")] = value
        return env

    def one(path: str, headers: dict) -> tuple[str, int]:
        out: list = []
        body = app(environ(path, headers), lambda status, hdrs, exc=None: out.append(status))
        size = sum(len(chunk) for chunk in body)
        if hasattr(body, "close"):
            body.close()
        return out[0], size

    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    print(f"load average {os.getloadavg()[0]:.2f}; n={args.n}")
    print(f"{'endpoint':13} {'CPU/req':>9} {'wall/req':>9} {'queries':>8} {'bytes':>7}")
    for name in [e for e in args.endpoints.split(",") if e]:
        path, kind = rest_bench.ENDPOINTS[name]
        headers = auth[kind]
        for _ in range(200):
            status, size = one(path, headers)
        assert status.startswith("200"), (name, status)
        queries.clear()
        with connection.execute_wrapper(count):
            one(path, headers)
        per_request_queries = list(queries)
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
        elif args.cprofile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, not wall
            profiler.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.n):
            one(path, headers)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{name:13} {cpu * 1000 / args.n:7.3f}ms {wall * 1000 / args.n:7.3f}ms "
            f"{len(per_request_queries):8} {size:7}",
            flush=True,
        )
        if args.profile:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        elif args.cprofile:
            import pstats

            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(25)
        if args.profile or args.cprofile:
            for sql in per_request_queries:
                print("   SQL:", sql[:160])


def _auth_from_db() -> dict:
    from django.test import Client
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import User

    user = User.objects.get(username="restbench")
    client = Client()
    client.force_login(user)
    return {
        "jwt": {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"},
        "session": {"Cookie": f"sessionid={client.cookies['sessionid'].value}"},
    }


if __name__ == "__main__":
    main()
