"""Headless load test against a local deployment, bounded in time (docs/performance.md "Load test").

Starts, all on 127.0.0.1: the fake Zenzefi upstream (bench/upstream.py), the platform as in
production (gunicorn -c gunicorn.conf.py: uvicorn workers, Prometheus multiprocess mode), migrated
on its own database; then Locust with bench/locustfile.py for --duration seconds; then stops
everything and prints the figures (a Markdown table) and, with --json, writes them to a file.

    python3 -m venv var/loadtest-venv
    var/loadtest-venv/bin/pip install "$(grep '^locust==' bench/requirements.txt)"
    createdb -h 127.0.0.1 -U postgres zz_load      # or leave --database-url out: SQLite
    python bench/loadtest.py --users 20 --duration 60 \\
        --database-url postgres://postgres@127.0.0.1:5432/zz_load --redis-url redis://127.0.0.1:6379/12

The platform runs with MOCK_PAYMENTS_ENABLED=true and RATELIMIT_ENABLE=false (every simulated
customer registers from 127.0.0.1, and the auth limit is 5 per hour per address); the API and proxy
rate limits stay on. Servers' logs go to var/loadtest/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "loadtest"


def _wait(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:3]} exited early (see {VAR})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback only)
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in {seconds} s")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _locust() -> str:
    for candidate in (
        os.environ.get("LOCUST"),
        str(ROOT / "var/loadtest-venv/bin/locust"),
        shutil.which("locust"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("locust not found: see the docstring of bench/loadtest.py (var/loadtest-venv)")


def _stop(process: subprocess.Popen | None) -> None:
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


def _summary(csv_prefix: Path) -> list[dict]:
    rows = []
    with open(f"{csv_prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append(
                {
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "median_ms": float(row["Median Response Time"]),
                    "p95_ms": float(row["95%"]),
                    "p99_ms": float(row["99%"]),
                    "rps": float(row["Requests/s"]),
                }
            )
    return rows


def _markdown(rows: list[dict]) -> str:
    lines = [
        "| request | count | failures | median ms | p95 ms | p99 ms | req/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        name = "**all**" if r["name"] == "Aggregated" else r["name"]
        lines.append(
            f"| {name} | {r['requests']} | {r['failures']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} "
            f"| {r['p99_ms']:.0f} | {r['rps']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (bounded)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--port", type=int, default=8610)
    parser.add_argument("--upstream-port", type=int, default=8611)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file under var/loadtest")
    parser.add_argument("--redis-url", default="", help="default: the shared file cache")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    for port in (args.port, args.upstream_port):
        if not _port_free(port):
            raise SystemExit(f"port {port} is in use")
    shutil.rmtree(VAR, ignore_errors=True)
    (VAR / "prometheus").mkdir(parents=True)
    database_url = args.database_url or f"sqlite:///{VAR / 'load.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DATABASE_URL=database_url,
        ZENZEFI_VAR_DIR=str(VAR / "var"),
        SECRET_KEY=secrets.token_urlsafe(50),
        WEBHOOK_SIGNING_KEY=secrets.token_urlsafe(50),
        PAYMENT_WEBHOOK_SECRET=secrets.token_urlsafe(50),
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        MOCK_PAYMENTS_ENABLED="true",
        RATELIMIT_ENABLE="false",
        ZENZEFI_TARGET_URL=f"http://127.0.0.1:{args.upstream_port}",
        BACKEND_URL=f"http://127.0.0.1:{args.port}",
        CACHE_KEY_PREFIX="zzload",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        GUNICORN_BIND=f"127.0.0.1:{args.port}",
        WEB_CONCURRENCY=str(args.workers),
        PROMETHEUS_MULTIPROC_DIR=str(VAR / "prometheus"),
        COOKIE_SECURE="false",
    )
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    if args.redis_url:  # start from an empty key space of our own prefix
        code = (  # our prefix only (django-redis' cache.clear() would flush the whole database)
            "from zenzefi.kv import get_kv; from django.core.cache import cache; "
            "get_kv().clear(); cache.delete_pattern('*')"
        )
        subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True)

    upstream = web = None
    try:
        upstream = subprocess.Popen(
            [sys.executable, "bench/upstream.py", str(args.upstream_port)],
            cwd=ROOT,
            stdout=open(VAR / "upstream.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        _wait(f"http://127.0.0.1:{args.upstream_port}/small", upstream)
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=open(VAR / "web.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        _wait(f"http://127.0.0.1:{args.port}/health", web)
        csv_prefix = VAR / "locust"
        started = time.time()
        locust = subprocess.run(
            [
                _locust(),
                "-f",
                "bench/locustfile.py",
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{args.duration}s",
                "--stop-timeout",
                "10",
                "--host",
                f"http://127.0.0.1:{args.port}",
                "--csv",
                str(csv_prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            timeout=args.duration + 120,
            check=False,
        )
        elapsed = time.time() - started
        with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        _stop(web)
        _stop(upstream)

    proxied = sum(float(v) for v in re.findall(r"^proxy_requests_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.M))
    rows = _summary(csv_prefix)
    result = {
        "users": args.users,
        "duration_s": args.duration,
        "wall_s": round(elapsed, 1),
        "web_workers": args.workers,
        "database": database_url.split(":", 1)[0],
        "cache": "redis" if args.redis_url else "file",
        "locust_exit_code": locust.returncode,
        "proxy_requests_total_from_metrics": proxied,
        "rows": rows,
    }
    print(_markdown(rows))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return locust.returncode


if __name__ == "__main__":
    sys.exit(main())
