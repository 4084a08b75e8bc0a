"""Shared fixtures of the jobs/notifications/webhooks/health tests: Celery in eager mode and real
HTTP servers on 127.0.0.1 (a webhook receiver, an upstream)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zenzefi.celery import app as celery_app


@pytest.fixture
def celery_eager():
    """Run `.delay()` in-process (settings cannot switch an already configured Celery app).
    Not propagating lets `self.retry()` re-run the task in-process (countdowns are recorded,
    not slept); a task's error shows in its effects and the log."""
    old = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = False
    yield celery_app
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = old


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class LocalServer:
    """A real HTTP server on 127.0.0.1: answers with `statuses` in turn (then the last one),
    after `delay` seconds, and records what it received."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def next_status(self) -> int:
        index = min(len(self.received) - 1, len(self.statuses) - 1)
        return self.statuses[max(0, index)]


def _serve(state: LocalServer):
    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if state.delay:
                time.sleep(state.delay)
            status = state.next_status()
            payload = json.dumps({"status": status}).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server, thread


@pytest.fixture
def receiver():
    state = LocalServer()
    server, thread = _serve(state)
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def upstream():
    state = LocalServer()
    server, thread = _serve(state)
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
