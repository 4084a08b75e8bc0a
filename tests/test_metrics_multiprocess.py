"""Prometheus multiprocess mode: `/metrics` sums what every worker process counted.

Two real server processes (uvicorn, the ASGI app gunicorn's workers run) share one
PROMETHEUS_MULTIPROC_DIR, as gunicorn's workers do; requests go to each, and `/metrics` of either
shows the sum. Then the gunicorn hooks: stale files are cleared at start and a dead worker's live
gauges disappear while its counters stay.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from zenzefi import prometheus_multiproc

BASE_DIR = Path(settings.BASE_DIR)
# Requests counted by Django's middleware (django-prometheus): 404s of a path that exists nowhere.
# (/health is answered by a raw ASGI app in zenzefi/asgi.py, outside Django's middleware.)
COUNTED_PATH = "/metrics-test/no-such-page"
NOT_FOUND_COUNTER = re.compile(
    r'^django_http_responses_total_by_status_total\{status="404"\}\s+([0-9.e+]+)$', re.MULTILINE
)


def _listener() -> socket.socket:
    """A listening socket on a free port in 8600-8699, handed to the server as a file descriptor:
    no other process (these tests may run concurrently) can take the port between choice and bind."""
    for port in random.sample(range(8600, 8700), 100):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    raise RuntimeError("no free port in 8600-8699")


def _start(sock: socket.socket, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "zenzefi.asgi:application", "--fd", str(sock.fileno())]
    return subprocess.Popen(
        [*command, "--no-access-log", "--log-level", "warning"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(sock.fileno(),),
    )


def _wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server on {port} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"server on {port} did not start")


def _count(port: int) -> float:
    """The 404 counter as /metrics of the server on `port` reports it (0 before the first one)."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    match = NOT_FOUND_COUNTER.search(body)
    return float(match.group(1)) if match else 0.0


def _hit(port: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{port}{COUNTED_PATH}", headers={"Connection": "close"}, timeout=5)
    assert response.status_code == 404


@pytest.fixture
def two_workers(tmp_path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "PYTEST_CURRENT_TEST"}}
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        DATABASE_URL=f"sqlite:///{tmp_path / 'metrics.sqlite3'}",
        ZENZEFI_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="metrics-multiprocess-test-secret-key-0123456789",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    processes, sockets = [], [_listener(), _listener()]
    try:
        for sock in sockets:
            processes.append(_start(sock, env))
        ports = [sock.getsockname()[1] for sock in sockets]
        for port, process in zip(ports, processes, strict=True):
            _wait_ready(port, process)
        yield ports, processes, multiproc
    finally:
        for sock in sockets:
            sock.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_metrics_sum_requests_served_by_two_worker_processes(two_workers):
    (port_a, port_b), processes, multiproc = two_workers
    base_a, base_b = _count(port_a), _count(port_b)
    assert base_a == base_b  # one shared view of the counters, whichever process answers

    for _ in range(7):
        _hit(port_a)
    for _ in range(5):
        _hit(port_b)

    assert _count(port_a) == base_a + 12
    assert _count(port_b) == base_a + 12
    pids = {int(m) for m in re.findall(r"_(\d+)\.db$", "\n".join(p.name for p in multiproc.iterdir()), re.M)}
    assert {p.pid for p in processes} <= pids  # both processes wrote their own files

    # A worker that exits: its requests still count (counters never go down).
    processes[1].terminate()
    processes[1].wait(timeout=15)
    assert _count(port_a) == base_a + 12


def test_scrape_time_gauges_are_exported(two_workers):
    (port_a, _), _, _ = two_workers
    body = httpx.get(f"http://127.0.0.1:{port_a}/metrics", timeout=10).text
    # Before any health check or backup: upstream state unknown (NaN), timestamps 0.
    assert re.search(r"^zenzefi_upstream_up NaN$", body, re.M)
    assert re.search(r"^zenzefi_health_checked_timestamp_seconds 0\.0$", body, re.M)
    assert re.search(r"^zenzefi_last_backup_timestamp_seconds 0\.0$", body, re.M)


def test_gunicorn_with_two_uvicorn_workers_reports_one_sum(tmp_path):
    """The production shape: gunicorn -c gunicorn.conf.py with 2 workers; its on_starting hook
    clears stale files, and /metrics counts every request whichever worker served it."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale file of an earlier run")
    sock = _listener()
    port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "PYTEST_CURRENT_TEST"}}
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        GUNICORN_BIND=f"fd://{sock.fileno()}",
        WEB_CONCURRENCY="2",
        LOG_FORMAT="json",
        DATABASE_URL=f"sqlite:///{tmp_path / 'metrics.sqlite3'}",
        ZENZEFI_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="metrics-multiprocess-test-secret-key-0123456789",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(sock.fileno(),),
    )
    sock.close()  # the server holds it now
    try:
        _wait_ready(port, server)
        assert not (multiproc / "counter_999999.db").exists()
        base = _count(port)
        for _ in range(30):  # a new connection each time: either worker may accept it
            _hit(port)
        assert _count(port) == base + 30
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both workers have imported the app by now or soon
            pids = {m.group(1) for m in (re.search(r"_(\d+)\.db$", p.name) for p in multiproc.iterdir()) if m}
            if len(pids) >= 2:
                break
            _hit(port)
        assert len(pids) >= 2, "two worker processes write metric files"
    finally:
        server.terminate()
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
    # LOG_FORMAT=json: gunicorn's own lines are JSON too (gunicorn.conf.py's logconfig_dict).
    lines = [json.loads(line) for line in server.stderr.read().decode().splitlines() if line.startswith("{")]
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in lines)


# --- the gunicorn hooks ---------------------------------------------------------------------------


def test_on_starting_clears_files_of_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "mp"))
    (tmp_path / "mp").mkdir()
    (tmp_path / "mp" / "counter_123.db").write_bytes(b"old")
    (tmp_path / "mp" / "keep.txt").write_text("not a metric file")
    prometheus_multiproc.on_starting(server=None)
    assert sorted(p.name for p in (tmp_path / "mp").iterdir()) == ["keep.txt"]


def test_child_exit_removes_only_the_dead_workers_live_gauges(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    names = ["gauge_livesum_4242.db", "gauge_liveall_4242.db", "counter_4242.db", "gauge_livesum_77.db"]
    names.append("gauge_mostrecent_4242.db")
    for name in names:
        (tmp_path / name).write_bytes(b"x")

    class Worker:
        pid = 4242

    prometheus_multiproc.child_exit(server=None, worker=Worker())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["counter_4242.db", "gauge_livesum_77.db", "gauge_mostrecent_4242.db"]
    )


def test_hooks_do_nothing_outside_multiprocess_mode(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    assert prometheus_multiproc.prepare_dir() is None
    prometheus_multiproc.mark_dead(1)  # no error
