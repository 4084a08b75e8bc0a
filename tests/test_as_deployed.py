"""As deployed (issue 12, issue 11 item 3): the API docs work offline, the shipped configuration
trusts no forwarded address from everyone, and the suite never reads a developer's `.env`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

BASE_DIR = Path(settings.BASE_DIR)

pytestmark = pytest.mark.django_db

EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost|testserver)[a-z0-9.-]+\.[a-z]{2,}""", re.I)


@pytest.mark.parametrize("path", ["/api/docs/"])
def test_api_docs_reference_no_external_host(client, path):
    response = client.get(path, HTTP_HOST="localhost")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert not EXTERNAL.findall(html), EXTERNAL.findall(html)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file of ours"
    # Swagger UI would ask swagger.io's online validator for a badge: switched off.
    assert '"validatorUrl": null' in html


# --- The test command never reads a developer's .env; pytest running no test fails ---------------------


def _settings_in_subprocess(env: dict[str, str], expression: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    env = {**env, "DJANGO_SETTINGS_MODULE": "zenzefi.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_the_suite_never_reads_the_dotenv_that_start_writes():
    assert os.environ["ZENZEFI_READ_DOTENV"] == "false"  # pytest.ini sets it, not as a default
    dotenv = BASE_DIR / ".env"
    if dotenv.exists():
        # A developer's own .env: this run is the proof that it was not read.
        pytest.skip("a .env exists here; the fresh-clone check (scripts/smoke, CI) covers the write")
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_URL", "DEMO_USER_PASSWORD")}
    try:
        dotenv.write_text("BACKEND_URL=http://dotenv.invalid:8100\nDEMO_USER_PASSWORD=from-dotenv\n")
        assert _settings_in_subprocess(env, "settings.BACKEND_URL") != "http://dotenv.invalid:8100"
        env_reading = {k: v for k, v in env.items() if k != "ZENZEFI_READ_DOTENV"}
        assert _settings_in_subprocess(env_reading, "settings.BACKEND_URL") == "http://dotenv.invalid:8100"
    finally:
        dotenv.unlink(missing_ok=True)


def test_the_test_command_fails_when_no_test_runs():
    command = ["./scripts/test", "tests/test_as_deployed.py", "-k", "no_such_test_zz", "-q"]
    result = subprocess.run(
        command,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no test ran; that is a failure" in result.stderr


# --- Issue 11 item 3: no shipped file trusts X-Forwarded-For from everyone ------------------------------

TRUSTS_EVERYONE = re.compile(r"forwarded[-_]allow[-_]ips\W{0,6}\*", re.I)


def _shipped_configuration() -> list[Path]:
    files = [
        BASE_DIR / name for name in ("docker-compose.yml", "Dockerfile", "gunicorn.conf.py", ".env.example")
    ]
    files += [p for p in (BASE_DIR / "deploy").rglob("*") if p.is_file()]
    files += [p for p in (BASE_DIR / "scripts").iterdir() if p.is_file()]
    files += [p for p in (BASE_DIR / ".ci").rglob("*") if p.is_file()]
    return files


def test_no_shipped_configuration_trusts_every_forwarding_address():
    files = _shipped_configuration()
    assert BASE_DIR / "deploy" / "compose.env.example" in files and len(files) > 10
    trusting = [
        str(p.relative_to(BASE_DIR)) for p in files if TRUSTS_EVERYONE.search(p.read_text(errors="replace"))
    ]
    assert not trusting, f"trusts X-Forwarded-For from anyone (FORWARDED_ALLOW_IPS=*): {trusting}"
    # The scan finds the forms it must find.
    for line in (
        "FORWARDED_ALLOW_IPS=*",
        'FORWARDED_ALLOW_IPS: "*"',
        "--forwarded-allow-ips='*'",
        'forwarded_allow_ips = "*"',
    ):
        assert TRUSTS_EVERYONE.search(line), line


def _shipped_forwarded_allow_ips(monkeypatch, tmp_path) -> str:
    """What gunicorn.conf.py gives the uvicorn workers under deploy/compose.env.example's settings."""
    import runpy

    from gunicorn.config import Config

    for line in (BASE_DIR / "deploy" / "compose.env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and match[1] in ("FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY"):
            monkeypatch.setenv(match[1], match[2])
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the config file would set its own
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    cfg = Config()
    for key, value in runpy.run_path(str(BASE_DIR / "gunicorn.conf.py")).items():
        if key in cfg.settings:
            cfg.set(key, value)
    return cfg.forwarded_allow_ips  # uvicorn_worker passes it to uvicorn.Config as is


@pytest.mark.django_db(transaction=True)
def test_shipped_server_ignores_a_rotated_forwarded_for_from_an_untrusted_peer(
    settings, monkeypatch, tmp_path
):
    import httpx
    import uvicorn

    from audit.models import AuditLog
    from tests.upstream import free_port
    from zenzefi.asgi import application

    allowed = _shipped_forwarded_allow_ips(monkeypatch, tmp_path)
    settings.AUTH_RATE_LIMIT = "3/h"
    settings.RATELIMIT_ENABLE = True
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        forwarded_allow_ips=allowed,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        # The peer 127.0.0.2 (another loopback address) is not the balancer.
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        statuses = []
        with httpx.Client(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for i in range(5):
                response = client.post(
                    "/api/v1/auth/login",
                    json={"username": "nobody", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"203.0.113.{i + 1}", "X-Forwarded-Proto": "https"},
                )
                statuses.append(response.status_code)
    finally:
        server.should_exit = True
        thread.join(10)
    assert 429 not in statuses[:3], statuses
    assert statuses[3:] == [429, 429], statuses
    ips = set(
        AuditLog.objects.filter(action__in=["auth.login_failed", "rate_limit.hit"]).values_list(
            "ip", flat=True
        )
    )
    assert ips == {"127.0.0.2"}, ips
    assert "*" not in allowed


# --- No log noise at start (issue 12 item 8) ------------------------------------------------------------

NOISE_CHECK = """
import asyncio, logging
import django
django.setup()
from django.conf import settings
from django.http import StreamingHttpResponse
from kombu import Connection
from zenzefi.celery import app

logging.basicConfig(level=logging.INFO)
Connection(settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS)


async def stream():
    async for _ in StreamingHttpResponse(iter([b"static file"])):  # what WhiteNoise hands to ASGI
        pass


asyncio.run(stream())
print(settings.CELERY_BROKER_URL, app.conf.worker_redirect_stdouts_level)
"""


def test_embedded_start_has_no_kombu_hostname_or_whitenoise_warning_and_emails_log_as_info():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "zenzefi.settings"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", NOISE_CHECK],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    broker, level = result.stdout.split()[-2:]
    assert broker.startswith("filesystem://") and level == "INFO"
    assert "No hostname" not in result.stderr, result.stderr
    assert "must consume synchronous iterators" not in result.stderr, result.stderr


# --- scripts/start: HOST/PORT decide the URLs unless set explicitly ------------------------------------


def _start_urls(**env: str) -> dict[str, str]:
    script = (
        'source scripts/site-urls.sh; printf \'%s|%s|%s\' "$BACKEND_URL" "${PROXY_ORIGIN:-}" "$ALLOWED_HOSTS"'
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HOST", "PORT", "BACKEND_URL", "PROXY_ORIGIN", "ALLOWED_HOSTS")
    }
    result = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", script],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    backend, proxy, hosts = result.stdout.split("|")
    return {"BACKEND_URL": backend, "PROXY_ORIGIN": proxy, "ALLOWED_HOSTS": hosts}


def test_start_derives_backend_url_and_proxy_origin_from_host_and_port():
    default = _start_urls()
    assert (
        default["BACKEND_URL"] == "http://127.0.0.1:8000"
        and default["PROXY_ORIGIN"] == "http://localhost:8000"
    )
    assert {"127.0.0.1", "localhost"} <= set(default["ALLOWED_HOSTS"].split(","))
    assert _start_urls(PORT="8100")["BACKEND_URL"] == "http://127.0.0.1:8100"
    assert _start_urls(PORT="8100")["PROXY_ORIGIN"] == "http://localhost:8100"
    every = _start_urls(HOST="0.0.0.0", PORT="8131")  # noqa: S104
    assert (every["BACKEND_URL"], every["PROXY_ORIGIN"]) == ("http://127.0.0.1:8131", "http://localhost:8131")
    local = _start_urls(HOST="localhost", PORT="8131")
    assert (local["BACKEND_URL"], local["PROXY_ORIGIN"]) == ("http://localhost:8131", "http://127.0.0.1:8131")
    named = _start_urls(HOST="zz.lan", PORT="8131")
    assert named["BACKEND_URL"] == "http://zz.lan:8131" and "zz.lan" in named["ALLOWED_HOSTS"].split(",")
    # Set explicitly: kept.
    explicit = _start_urls(
        PORT="8100", BACKEND_URL="https://zz.example.com", PROXY_ORIGIN="https://p.example.com"
    )
    assert (explicit["BACKEND_URL"], explicit["PROXY_ORIGIN"]) == (
        "https://zz.example.com",
        "https://p.example.com",
    )


def test_start_never_pins_urls_in_the_dotenv_it_writes():
    start = (BASE_DIR / "scripts" / "start").read_text()
    written = start[start.index("cat > .env <<ENV") : start.index("\nENV\n")]
    for name in ("BACKEND_URL", "PROXY_ORIGIN", "ALLOWED_HOSTS", "HOST", "PORT"):
        assert f"{name}=" not in written, name
    # The environment wins over .env, and site-urls.sh runs after .env and before anything reads them.
    assert (
        start.index('eval "$_env_before"')
        < start.index("source scripts/site-urls.sh")
        < start.index("migrate")
    )
    assert '--host "$HOST" --port "$PORT"' in start


# --- README: short, the two commands, links that resolve -------------------------------------------------

COLLEAGUE_DOCS = {"docs/api.md", "docs/proxy-origin.md"}  # written on other branches, linked already


def test_readme_is_short_has_the_two_commands_and_links_that_resolve():
    readme = (BASE_DIR / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    assert "./scripts/start" in readme and "./scripts/test" in readme
    links = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert {
        "docs/operations.md",
        "docs/jobs.md",
        "docs/payments.md",
        "docs/proxy.md",
        "docs/pages.md",
    } <= links
    missing = [link for link in links - COLLEAGUE_DOCS if not (BASE_DIR / link).is_file()]
    assert not missing, missing
    # No relative link inside docs/ points at a file that is not there.
    for page in (BASE_DIR / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([\w.-]+\.md)", page.read_text()):
            assert (
                link in {p.removeprefix("docs/") for p in COLLEAGUE_DOCS} or (page.parent / link).is_file()
            ), (
                page.name,
                link,
            )


# --- requirements.txt is the production install ---------------------------------------------------------


def _requirements(name: str) -> dict[str, str]:
    pins = {}
    for line in (BASE_DIR / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, _, version = line.partition("==")
            assert version, f"{name}: {line} is not pinned"
            pins[package.lower()] = version
    return pins


def test_requirements_txt_alone_runs_every_process():
    runtime = _requirements("requirements.txt")
    # kombu's Redis transport imports packaging; uvicorn's standard extras (uvloop, httptools) serve
    # every mode; the Swagger UI assets come from the sidecar, not a CDN.
    for package in ("packaging", "uvicorn[standard]", "uvloop", "httptools", "drf-spectacular-sidecar"):
        assert package in runtime, package
    dev = _requirements("requirements-dev.txt")
    assert "standardwebhooks" in dev and "standardwebhooks" not in runtime
    assert not {"pytest", "pytest-django", "ruff", "playwright"} & set(runtime)
    # CI proves it: the production smoke test runs after the tests, from a requirements.txt-only venv.
    ci = (BASE_DIR / ".ci" / "run").read_text()
    assert ci.index("./scripts/test") < ci.index("./scripts/smoke")
    smoke = (BASE_DIR / "scripts" / "smoke").read_text()
    assert "-r requirements.txt" in smoke and "requirements-dev" not in smoke.split("scripts/venv.sh")[0]


# --- Issue 15 item 4: X-Forwarded-Proto is believed from the balancer only -----------------------------
# Under ASGI Django takes the scheme from the scope, which uvicorn sets from X-Forwarded-Proto only for
# FORWARDED_ALLOW_IPS peers. SECURE_PROXY_SSL_HEADER=true would make Django read the raw header
# itself, from whoever reaches the web port: the shipped configuration must not set it.


def _scheme(request):
    from django.http import JsonResponse

    return JsonResponse({"scheme": request.scheme, "secure": request.is_secure()})


TRUSTS_PROTO = re.compile(r"SECURE_PROXY_SSL_HEADER\W{0,4}(true|on|ok|y|yes|1)\b", re.I)
urlpatterns = []  # filled below: the scheme probe the test serves as ROOT_URLCONF


def _shipped_env() -> dict[str, str]:
    lines = (BASE_DIR / "deploy" / "compose.env.example").read_text().splitlines()
    return dict(m.groups() for line in lines if (m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)))


def test_the_shipped_configuration_does_not_trust_forwarded_proto_from_every_peer():
    import environ

    shipped = _shipped_env()
    value = shipped.get("SECURE_PROXY_SSL_HEADER", "false").strip().lower()
    assert value not in environ.Env.BOOLEAN_TRUE_STRINGS, "SECURE_PROXY_SSL_HEADER=true trusts any peer"
    setting_lines = [
        (path, line)
        for path in _shipped_configuration()
        for line in path.read_text(errors="replace").splitlines()
        if not line.lstrip().startswith("#")
    ]
    trusting = [
        f"{p.relative_to(BASE_DIR)}: {line}" for p, line in setting_lines if TRUSTS_PROTO.search(line)
    ]
    assert not trusting, f"trusts X-Forwarded-Proto from any peer: {trusting}"
    # The scan finds the forms it must find.
    for line in (
        "SECURE_PROXY_SSL_HEADER=true",
        'SECURE_PROXY_SSL_HEADER: "yes"',
        "SECURE_PROXY_SSL_HEADER=1",
    ):
        assert TRUSTS_PROTO.search(line), line


def test_served_as_shipped_https_is_believed_from_the_balancer_only(settings, monkeypatch, tmp_path):
    import environ
    import httpx
    import uvicorn
    from django.urls import path

    from tests.upstream import free_port
    from zenzefi.asgi import application

    urlpatterns[:] = [path("scheme", _scheme)]
    settings.ROOT_URLCONF = __name__
    trusts_header = (
        _shipped_env().get("SECURE_PROXY_SSL_HEADER", "").lower() in environ.Env.BOOLEAN_TRUE_STRINGS
    )
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if trusts_header else None
    allowed = _shipped_forwarded_allow_ips(monkeypatch, tmp_path)
    assert "127.0.0.1" in allowed and "127.0.0.2" not in allowed
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        forwarded_allow_ips=allowed,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    https = {"X-Forwarded-Proto": "https"}

    def probe(peer: str, headers: dict) -> dict:
        transport = httpx.HTTPTransport(local_address=peer)
        with httpx.Client(transport=transport, base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            response = client.get("/scheme", headers=headers)
            assert response.status_code == 200, response.text[:300]
            return response.json()

    try:
        deadline = time.monotonic() + 30  # waits for the start; asserts nothing about time
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        stranger, balancer = probe("127.0.0.2", https), probe("127.0.0.1", https)
        plain = probe("127.0.0.1", {})
    finally:
        server.should_exit = True
        thread.join(10)
    # Anyone else who reaches the web port cannot claim HTTPS ...
    assert stranger == {"scheme": "http", "secure": False}
    # ... the balancer (FORWARDED_ALLOW_IPS) can, through uvicorn, with no Django setting.
    assert balancer == {"scheme": "https", "secure": True}
    assert plain == {"scheme": "http", "secure": False}
