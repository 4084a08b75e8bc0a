"""Production smoke test (scripts/smoke runs it; CI runs scripts/smoke after the tests).

The platform as an operator runs it: the web, worker and beat commands of docker-compose.yml, from a
virtual environment holding requirements.txt only (SMOKE_VENV, made by scripts/smoke), on a fresh
PostgreSQL database and its own Redis DB number, after `manage.py migrate` and nothing else. The
environment is deploy/compose.env.example with the machine's addresses filled in.

Beside them: a real upstream HTTP server (ZENZEFI_TARGET_URL) and a webhook receiver that verifies
each delivery with the reference Standard Webhooks library (`standardwebhooks`, requirements-dev.txt;
this script runs in the development venv, never the production one).

Through the API: register, log in, mock top-up, create a webhook endpoint, buy a token, proxied
requests. It passes only when, within SMOKE_TIMEOUT (90) seconds of starting the three processes:
the health job has stored a result (/health/detailed is not `unknown`), a signed `token.purchased`
delivery reached the receiver and verified, and the proxied requests show in
GET /api/v1/analytics/usage (total_requests > 0). Everything it started is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from standardwebhooks import Webhook

BASE = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("SMOKE_VENV", BASE / "var" / "smoke" / "venv")).resolve()
WORK = Path(os.environ.get("SMOKE_DIR", BASE / "var" / "smoke")).resolve()
DB_NAME = os.environ.get("SMOKE_DB_NAME", "zz_smoke")
PG = os.environ.get("SMOKE_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("SMOKE_REDIS_URL", "redis://127.0.0.1:6379/13")
WEB_PORT = int(os.environ.get("SMOKE_PORT", "8138"))
UPSTREAM_PORT = int(os.environ.get("SMOKE_UPSTREAM_PORT", "8136"))
RECEIVER_PORT = int(os.environ.get("SMOKE_RECEIVER_PORT", "8137"))
TIMEOUT = float(os.environ.get("SMOKE_TIMEOUT", "90"))
SITE = f"http://127.0.0.1:{WEB_PORT}"

processes: dict[str, subprocess.Popen] = {}


def log(message: str) -> None:
    print(f"smoke: {message}", flush=True)


# --- the upstream and the webhook receiver (threads in this process) ----------------------------------


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"<html><body>upstream page {self.path}</body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


class Receiver(BaseHTTPRequestHandler):
    secret: str | None = None
    verified: list[dict] = []
    refused: list[str] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = 400
        try:
            if Receiver.secret is None:
                raise ValueError("no secret yet")
            payload = Webhook(Receiver.secret).verify(body, dict(self.headers.items()))
            Receiver.verified.append(payload)
            status = 200
        except Exception as exc:  # any failure to verify is the test's failure
            Receiver.refused.append(f"{type(exc).__name__}: {exc}")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- the platform's processes -------------------------------------------------------------------------


def environment() -> dict[str, str]:
    """deploy/compose.env.example (the shipped production settings) with this machine's addresses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ZENZEFI_", "CELERY_"))}
    for line in (BASE / "deploy" / "compose.env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            env[match[1]] = match[2]
    env.update(
        {
            # Never a developer's .env: the smoke test runs what it says.
            "ZENZEFI_READ_DOTENV": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "WEBHOOK_SIGNING_KEY": secrets.token_urlsafe(50),
            "PAYMENT_WEBHOOK_SECRET": secrets.token_urlsafe(50),
            "DATABASE_URL": f"{PG}/{DB_NAME}",
            "REDIS_URL": REDIS_URL,
            "CACHE_KEY_PREFIX": "zzsmoke",
            "ZENZEFI_TARGET_URL": f"http://127.0.0.1:{UPSTREAM_PORT}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": SITE,
            "BACKEND_URL": SITE,
            "SITE_URL": SITE,
            "PROXY_ORIGIN": f"http://localhost:{WEB_PORT}",
            "MOCK_PAYMENTS_ENABLED": "true",
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "EMAIL_URL": "consolemail://",
            "COOKIE_SECURE": "false",
            "SECURE_PROXY_SSL_HEADER": "false",
            "ZENZEFI_VAR_DIR": str(WORK / "var"),
            "BACKUP_DIR": str(WORK / "backups"),
            "PROMETHEUS_MULTIPROC_DIR": str(WORK / "prometheus"),
            "GUNICORN_BIND": f"127.0.0.1:{WEB_PORT}",
            "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(VENV),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("PYTHONPATH", None)
    return env


def compose_commands() -> dict[str, list[str]]:
    """The commands docker-compose.yml gives migrate, web, worker and beat (the pid file moved here)."""
    services = yaml.safe_load((BASE / "docker-compose.yml").read_text())["services"]
    commands = {}
    for name in ("migrate", "web", "worker", "beat"):
        command = [str(part) for part in services[name]["command"]]
        command = [
            f"--pidfile={WORK / 'celerybeat.pid'}" if c.startswith("--pidfile=") else c for c in command
        ]
        executable = VENV / "bin" / command[0]
        assert executable.exists(), f"{command[0]} is not in the requirements.txt venv"
        commands[name] = [str(executable), *command[1:]]
    return commands


def start(name: str, command: list[str], env: dict[str, str]) -> None:
    out = open(WORK / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    processes[name] = subprocess.Popen(  # noqa: S603
        command, cwd=BASE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    with open(WORK / "pids", "a") as pids:  # scripts/smoke's trap stops them if this process is killed
        pids.write(f"{processes[name].pid}\n")
    log(f"started {name} (pid {processes[name].pid}): {' '.join(command)}")


def stop_all() -> None:
    for proc in processes.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    for name, proc in processes.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop on SIGTERM: killed")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    (WORK / "pids").unlink(missing_ok=True)
    log("stopped " + ", ".join(f"{n} (exit {p.returncode})" for n, p in processes.items()))


def psql(sql: str, env: dict[str, str]) -> None:
    code = "import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); c.execute(sys.argv[2])"
    subprocess.run([str(VENV / "bin" / "python"), "-c", code, f"{PG}/postgres", sql], check=True, env=env)  # noqa: S603


def redis_flush() -> None:
    code = "import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()"
    subprocess.run([str(VENV / "bin" / "python"), "-c", code, REDIS_URL], check=True)  # noqa: S603


# --- the API ------------------------------------------------------------------------------------------


def call(method: str, path: str, body=None, headers=None, expect=(200, 201)):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(SITE + path, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    if status not in expect:
        raise AssertionError(f"{method} {path}: {status} {raw[:500]!r}")
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


def wait_for_web(deadline: float) -> None:
    while time.monotonic() < deadline:
        for name, proc in processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(SITE + "/health", timeout=2):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # it answers (503 while unhealthy is still an answer)
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the web server did not answer /health")


def scenario(started: float) -> None:
    deadline = started + TIMEOUT
    wait_for_web(deadline)
    log(f"web answers after {elapsed(started)}")
    password = "Smoke-" + secrets.token_urlsafe(12)
    call(
        "POST",
        "/api/v1/auth/register",
        {"email": "smoke@example.com", "username": "smoke", "password": password},
    )
    access = call("POST", "/api/v1/auth/login", {"username": "smoke", "password": password})["access"]
    auth = {"Authorization": f"Bearer {access}"}
    call(
        "POST", "/api/v1/currency/mock-purchase", {"amount": "150.00"}, {**auth, "Idempotency-Key": "smoke-1"}
    )
    endpoint = call(
        "POST",
        "/api/v1/webhooks/",
        {"url": f"http://127.0.0.1:{RECEIVER_PORT}/hook", "events": ["token.purchased"]},
        auth,
    )
    Receiver.secret = endpoint["secret"]
    bought = call("POST", "/api/v1/tokens/purchase", {"duration_hours": 1, "scope": "full"}, auth)
    proxy_headers = {"X-Access-Token": bought["token"], "X-Device-ID": "smoke-device"}
    for i in range(5):
        page = call("GET", f"/api/v1/proxy/smoke/{i}", headers=proxy_headers)
        assert f"upstream page /smoke/{i}" in page, page[:300]
    docs = call("GET", "/api/docs/")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs)
    assert assets, "the API docs reference no static asset"
    for asset in assets:
        call("GET", asset)  # served by the platform itself (drf-spectacular-sidecar), no CDN
    log(f"API walk done after {elapsed(started)} (register, top-up, webhook, token, 5 proxied, API docs)")

    pending = {"health job result", "signed webhook verified", "proxied requests in analytics/usage"}
    while pending and time.monotonic() < deadline:
        for name, proc in processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}")
        health = call("GET", "/health/detailed", expect=(200, 503))
        if "health job result" in pending and health.get("status") != "unknown":
            pending.discard("health job result")
            log(f"health job stored a result ({health.get('status')}) at {elapsed(started)}")
        if "signed webhook verified" in pending and any(
            p.get("type") == "token.purchased" for p in Receiver.verified
        ):
            pending.discard("signed webhook verified")
            log(f"signed token.purchased webhook verified at {elapsed(started)}")
        usage = call("GET", "/api/v1/analytics/usage", headers=auth)
        if "proxied requests in analytics/usage" in pending and usage.get("total_requests", 0) > 0:
            pending.discard("proxied requests in analytics/usage")
            log(f"analytics/usage total_requests={usage['total_requests']} at {elapsed(started)}")
        if pending:
            time.sleep(2)
    if Receiver.refused:
        raise AssertionError(f"webhook deliveries that did not verify: {Receiver.refused}")
    if pending:
        raise AssertionError(f"not within {TIMEOUT:.0f} s: {', '.join(sorted(pending))}")


def main() -> int:
    if WORK.exists():
        for child in WORK.iterdir():
            if child != VENV:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    (WORK / "prometheus").mkdir(parents=True, exist_ok=True)
    env = environment()
    commands = compose_commands()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    servers = [serve(Upstream, UPSTREAM_PORT), serve(Receiver, RECEIVER_PORT)]
    ok = False
    try:
        psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', env)
        psql(f'CREATE DATABASE "{DB_NAME}"', env)
        redis_flush()
        t0 = time.monotonic()
        migrate = subprocess.run(commands["migrate"], cwd=BASE, env=env, capture_output=True, text=True)  # noqa: S603
        if migrate.returncode:
            raise AssertionError(f"migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")
        # As the Dockerfile's build does: the static files WhiteNoise serves.
        static = [str(VENV / "bin" / "python"), "manage.py", "collectstatic", "--noinput", "-v0"]
        subprocess.run(static, cwd=BASE, env=env, check=True)  # noqa: S603
        log(f"migrate done in {time.monotonic() - t0:.1f} s: {migrate.stdout.strip().splitlines()[-1:]}")
        started = time.monotonic()
        for name in ("web", "worker", "beat"):
            start(name, commands[name], env)
        scenario(started)
        ok = True
        log(f"PASSED in {elapsed(started)} after the processes started")
    except (AssertionError, subprocess.CalledProcessError) as error:
        log(f"FAILED: {error}")
    finally:
        stop_all()
        for server in servers:
            server.shutdown()
        if not ok:
            for name in processes:
                lines = (WORK / f"{name}.log").read_text(errors="replace").splitlines()
                print(f"---- {name}.log (last 40 lines) ----", *lines[-40:], sep="\n")
        with contextlib.suppress(subprocess.CalledProcessError):
            psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', env)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
