"""REST benchmark (SPEC §19 "REST as deployed"): the platform's Django side served as deployed against
the same code under WSGI threads, side by side, everything on 127.0.0.1.

Modes (each one a real server started here, DEBUG off, PostgreSQL + Redis, LOG_FORMAT=json):
  deployed   gunicorn -c gunicorn.conf.py: the shipped production command and configuration
  asgi       gunicorn -c gunicorn.conf.py -k uvicorn_worker.UvicornWorker zenzefi.asgi:application
             (Django's pages and API under uvicorn workers, as shipped before the split; --modes)
  wsgi       gunicorn -c gunicorn.conf.py -k gthread --threads 4 zenzefi.wsgi:application (2 × 4)
2 workers each (--workers). For every mode wrk runs --connections (32) connections for --duration
(10) seconds on:
  balance       GET /api/v1/currency/balance        (JWT)
  me            GET /api/v1/users/me                (JWT)
  transactions  GET /api/v1/currency/transactions   (JWT; first page of 50, the user has 60 rows)
  dashboard     GET /account/                       (session cookie)
and prints req/s, p50, p95, p99, errors (non-2xx + socket errors) and the peak number of PostgreSQL
connections of the benchmark's database (pg_stat_activity, sampled every 100 ms).

Database zz_rest_bench (created if missing; BENCH_DATABASE_URL), Redis DB 4 under the key prefix
"zzrestbench" (BENCH_REDIS_URL). The seeded user is a free-tier user with the free tier's limit
raised (API_RATE_LIMIT_FREE) so the throttle does its usual work and never refuses. Ports 8147-8149.

    python bench/rest_bench.py [--duration 10] [--repeat 1] [--modes deployed,wsgi]
                               [--conn-max-age 60] [--json var/bench-rest/results.json]

The machine is shared: the 1-minute load average before and after each run is recorded; run when it
is low and repeat (--repeat) before believing a difference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench-rest"
PY = sys.executable
GUNICORN = str(Path(PY).with_name("gunicorn"))
PORTS = {"deployed": 8147, "asgi": 8148, "wsgi": 8149}
DB_NAME = "zz_rest_bench"
ENDPOINTS = {
    "balance": ("/api/v1/currency/balance", "jwt"),
    "me": ("/api/v1/users/me", "jwt"),
    "transactions": ("/api/v1/currency/transactions", "jwt"),
    "dashboard": ("/account/", "session"),
}
# wrk prints p50/75/90/99 only: this script adds p95 (microseconds).
WRK_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("PCT p50=%d p95=%d p99=%d\\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def mode_command(mode: str, workers: int) -> list[str]:
    base = [GUNICORN, "-c", "gunicorn.conf.py", "--workers", str(workers)]
    if mode == "deployed":
        return base
    if mode == "asgi":
        return [*base, "-k", "uvicorn_worker.UvicornWorker", "zenzefi.asgi:application"]
    if mode == "wsgi":
        return [*base, "-k", "gthread", "--threads", "4", "zenzefi.wsgi:application"]
    raise SystemExit(f"unknown mode {mode!r}")


def bench_env(args) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "CACHE_KEY_PREFIX": "zzrestbench",
            "CELERY_BROKER_URL": "memory://",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdef",
            "WEBHOOK_SIGNING_KEY": "bench-only-webhook-signing-key",
            "PAYMENT_WEBHOOK_SECRET": "bench-only-payment-webhook-secret",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "GUNICORN_LOGLEVEL": "warning",
            "API_RATE_LIMIT_FREE": "100000000",
            "JWT_ACCESS_MINUTES": "600",
            "ZENZEFI_VAR_DIR": "var/bench-rest",
        }
    )
    if args.conn_max_age is not None:
        env["CONN_MAX_AGE"] = str(args.conn_max_age)
    return env


def psql(database_url: str, sql: str, dbname: str | None = None) -> str:
    """Run one statement with psycopg (a server-side helper, not the app's connection)."""
    import psycopg

    url = database_url if dbname is None else database_url.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return "" if cur.description is None else str(cur.fetchone()[0])


def prepare(env: dict, database_url: str) -> dict:
    """Create and migrate the database, seed the user (60 ledger rows), return a JWT and a session."""
    VAR.mkdir(parents=True, exist_ok=True)
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{DB_NAME}'"  # noqa: S608 (a constant)
    if psql(database_url, exists, "postgres") == "0":
        psql(database_url, f'CREATE DATABASE "{DB_NAME}"', "postgres")
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = (
        "from decimal import Decimal\n"
        "from django.test import Client\n"
        "from rest_framework_simplejwt.tokens import RefreshToken\n"
        "from accounts.models import User\n"
        "from currency.models import Transaction\n"
        "from currency.services import balance_change\n"
        "user, _ = User.objects.get_or_create(username='restbench', defaults={'email': 'rb@example.com'})\n"
        "for i in range(60 - Transaction.objects.filter(user=user).count()):\n"
        "    balance_change(user=user, amount=Decimal('1.50'), transaction_type='ADJUSTMENT',\n"
        "                   description=f'bench {i}')\n"
        "client = Client()\n"
        "client.force_login(user)\n"
        "print('JWT', str(RefreshToken.for_user(user).access_token))\n"
        "print('SESSION', client.cookies['sessionid'].value)\n"
    )
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    found = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("JWT ", "SESSION ")))
    return {
        "jwt": {"Authorization": f"Bearer {found['JWT']}"},
        "session": {"Cookie": f"sessionid={found['SESSION']}"},
    }


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict):
        self.name = name
        self.log = open(VAR / f"{name}.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def cpu_seconds(self) -> float:
        """user + system CPU of the server and its workers so far."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True
        )
        total = 0
        for pid in [self.proc.pid, *(int(p) for p in out.stdout.split())]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (FileNotFoundError, IndexError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def wait_http(url: str, headers: dict, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers)  # noqa: S310 (127.0.0.1 only)
            with urllib.request.urlopen(req, timeout=3) as resp:  # noqa: S310
                resp.read()
                return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class ConnectionSampler:
    """Peak count of the benchmark database's backends in pg_stat_activity while it runs."""

    def __init__(self, database_url: str):
        import psycopg

        self.conn = psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            count = self.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DB_NAME,)
            ).fetchone()[0]
            self.peak = max(self.peak, count)
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.conn.close()


def wrk(url: str, connections: int, duration: int, headers: dict, script: str) -> dict:
    threads = 1 if connections == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", script]
    cmd += [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    pct = dict(kv.split("=") for kv in re.search(r"PCT (.*)", out).group(1).split())
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": int(pct["p50"]) / 1000,
        "p95_ms": int(pct["p95"]) / 1000,
        "p99_ms": int(pct["p99"]) / 1000,
        "errors": 0,
    }
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["errors"] += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["errors"] += sum(int(x) for x in m.groups())
    return result


def run_mode(mode: str, args, env: dict, auth: dict, script: str) -> dict:
    port = PORTS[mode]
    base = f"http://127.0.0.1:{port}"
    senv = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    server = Server(mode, mode_command(mode, args.workers), senv)
    results: dict = {}
    try:
        wait_http(base + ENDPOINTS["balance"][0], auth["jwt"])
        for name, (path, kind) in ENDPOINTS.items():
            if args.endpoints and name not in args.endpoints:
                continue
            headers = auth[kind]
            # warm-up: every worker's imports, templates, pools and caches
            subprocess.run(
                [
                    "wrk",
                    "-t1",
                    "-c8",
                    "-d2s",
                    *(arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")),
                    base + path,
                ],
                capture_output=True,
                timeout=30,
            )
            load = os.getloadavg()[0]
            cpu = server.cpu_seconds()
            with ConnectionSampler(args.database_url) as sampler:
                r = wrk(base + path, args.connections, args.duration, headers, script)
            r["cpu_ms_per_request"] = round((server.cpu_seconds() - cpu) * 1000 / max(1, r["requests"]), 2)
            r["pg_connections_peak"] = sampler.peak
            r["load_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
            results[name] = r
            print(
                f"{mode:9} {name:13} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                f"p95 {r['p95_ms']:7.1f} ms  errors {r['errors']:5}  "
                f"cpu/req {r['cpu_ms_per_request']:5.2f} ms  "
                f"pg conns {sampler.peak:3}  "
                f"load {r['load_1min']}",
                flush=True,
            )
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--modes", default="deployed,wsgi")
    parser.add_argument("--endpoints", default="", help="comma-separated subset of " + ",".join(ENDPOINTS))
    parser.add_argument("--conn-max-age", type=int, default=60, help="CONN_MAX_AGE (shipped: 60)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"))
    parser.add_argument("--json", default=str(VAR / "results.json"))
    args = parser.parse_args()
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    if not args.database_url.endswith("/" + DB_NAME):
        sys.exit(f"the benchmark database must be named {DB_NAME}")
    env = bench_env(args)
    auth = prepare(env, args.database_url)
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    script.write(WRK_LUA)
    script.close()
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {
            "workers": args.workers,
            "connections": args.connections,
            "conn_max_age": args.conn_max_age,
        },
        "runs": [],
    }
    try:
        for _ in range(args.repeat):
            results["runs"].append(
                {mode: run_mode(mode, args, env, auth, script.name) for mode in args.modes.split(",")}
            )
    finally:
        os.unlink(script.name)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(summary(results))


def summary(results: dict) -> str:
    rows = [
        "| run | mode | endpoint | req/s | p50 | p95 | errors | server CPU/request | peak PG conns "
        "| load (1 min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, run in enumerate(results["runs"], 1):
        for mode, endpoints in run.items():
            for name, r in endpoints.items():
                rows.append(
                    f"| {i} | {mode} | {name} | {r['rps']:.0f} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms "
                    f"| {r['errors']} | {r['cpu_ms_per_request']} ms | {r['pg_connections_peak']} "
                    f"| {r['load_1min'][0]} → {r['load_1min'][1]} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
