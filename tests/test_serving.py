"""Serving as shipped keeps PostgreSQL connections bounded (issue 12, item 4).

A real server started exactly as production starts it (`gunicorn -c gunicorn.conf.py`: 2 uvicorn
workers, the shipped CONN_MAX_AGE=60 of deploy/compose.env.example) takes 64 concurrent API
requests for a few seconds while pg_stat_activity is sampled: every request succeeds with the
user's real balance, and the database never sees more backends than the workers' fixed threads
(2 × DJANGO_THREADS) plus the test's own connection. Before the fix (Django's ASGI handler, a thread
and a persistent connection per request) the same load climbed past 90 connections and PostgreSQL
refused clients ("too many clients already").

PostgreSQL only: skipped with the reason on SQLite, a failure in CI without PostgreSQL (the
`requires_postgres` fixture). CI runs it in the PostgreSQL + Redis pass; by hand:
    DATABASE_URL=postgres://... REDIS_URL=redis://... ./scripts/test tests/test_serving.py
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from currency.services import balance_change

BASE_DIR = Path(settings.BASE_DIR)
WORKERS = 2
CONCURRENCY = 64
LOAD_SECONDS = 4.0


def _free_port() -> int:
    for port in random.sample(range(8140, 8150), 10):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8140-8149")


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _backends(conn: psycopg.Connection, name: str) -> int:
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]


@pytest.fixture
def shipped_server(transactional_db, requires_postgres):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CONN_MAX_AGE": "60",  # deploy/compose.env.example
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_LOGLEVEL": "warning",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "memory://",
        "API_RATE_LIMIT_FREE": "1000000",  # the throttle counts every request but never refuses
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes its own
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    process = subprocess.Popen(
        [gunicorn, "-c", "gunicorn.conf.py", "zenzefi.asgi:application"],  # docker-compose.yml's web
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {process.stderr.read().decode()[-3000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not start within 60 s")
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(5)


@pytest.mark.postgres
def test_shipped_server_keeps_postgres_connections_bounded_under_64_concurrent_requests(shipped_server):
    user = User.objects.create_user(username="loaded", email="loaded@example.com", password="x" * 12)
    balance_change(user=user, amount=Decimal("12.34"), transaction_type="ADJUSTMENT", description="seed")
    headers = {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}
    paths = ["/api/v1/currency/balance", "/api/v1/users/me", "/api/v1/currency/transactions"]
    name = connection.settings_dict["NAME"]
    # Django's connection of this test stays open meanwhile and counts too: the bound includes it.
    bound = WORKERS * settings.DJANGO_THREADS + 1

    stop = threading.Event()
    peak = 0
    monitor = psycopg.connect(_database_url().rsplit("/", 1)[0] + "/postgres", autocommit=True)

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _backends(monitor, name))
            time.sleep(0.05)

    def client(i: int) -> tuple[int, list[str]]:
        done, failures = 0, []
        with httpx.Client(base_url=shipped_server, headers=headers, timeout=30) as http:
            end = time.monotonic() + LOAD_SECONDS
            while time.monotonic() < end:
                path = paths[(i + done) % len(paths)]
                try:
                    response = http.get(path)
                except httpx.HTTPError as exc:
                    failures.append(f"{path}: {exc!r}")
                    continue
                done += 1
                if response.status_code != 200:
                    failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                elif path.endswith("balance") and response.json() != {"balance": "12.34"}:
                    failures.append(f"{path}: {response.text[:200]}")
        return done, failures

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(client, range(CONCURRENCY)))
    finally:
        stop.set()
        sampler.join()
        after = _backends(monitor, name)
        monitor.close()

    requests = sum(done for done, _ in results)
    failures = [f for _, fs in results for f in fs]
    assert not failures, f"{len(failures)} of {requests} requests failed, e.g. {failures[:3]}"
    assert requests >= CONCURRENCY  # every client got answers
    assert 0 < peak <= bound, f"{peak} PostgreSQL connections at once (bound {bound})"
    assert after <= bound
    # Nothing was written by reading: the ledger and the balance are as seeded.
    user.refresh_from_db()
    assert user.balance == Decimal("12.34") and user.transactions.count() == 1
