import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

ROOT = Path(__file__).resolve().parent.parent


def test_health_is_fast_json(client):
    response = client.get("/health")
    # Nothing cached by the health-check job yet: "unknown" with 200 (see tests/test_health.py).
    assert response.status_code == 200 and response.json() == {"status": "unknown", "checked_at": None}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/metrics", "/"])
def test_public_pages(client, url):
    assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_schema_lists_the_contract_paths(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/users/me",
        "/api/v1/currency/balance",
        "/api/v1/currency/transactions",
        "/api/v1/currency/mock-purchase",
    ]:
        assert path in schema["paths"], path


def _settings_probe(env: dict, expr: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "DEBUG",
            "SECRET_KEY",
            "MOCK_PAYMENTS_ENABLED",
        }
    }
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE','zenzefi.settings'); "
        f"django.setup(); from django.conf import settings as s; print({expr})"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "ZENZEFI_VAR_DIR": "var/test", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_key_required_when_debug_off():
    result = _settings_probe({"DEBUG": "false", "SECRET_KEY": ""}, "1")
    assert result.returncode != 0 and "SECRET_KEY is required" in result.stderr


def test_embedded_default_needs_no_server():
    result = _settings_probe(
        {"DEBUG": "true"},
        "s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], s.CELERY_BROKER_URL",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "sqlite3" in result.stdout and "FileBasedCache" in result.stdout and "filesystem://" in result.stdout
    )


def test_urls_switch_to_postgres_and_redis():
    result = _settings_probe(
        {"SECRET_KEY": "x" * 50, "DATABASE_URL": "postgres://u@db:5432/z", "REDIS_URL": "redis://r:6379/1"},
        "s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], "
        "s.CELERY_BROKER_URL, s.MOCK_PAYMENTS_ENABLED",
    )
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout and "RedisCache" in result.stdout
    assert "redis://r:6379/1" in result.stdout and "False" in result.stdout


def test_asgi_application_serves_health():
    async_to_sync(_asgi_health)()


async def _asgi_health():
    from zenzefi.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    comm = ApplicationCommunicator(application, scope)
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(5)
    body = await comm.receive_output(5)
    assert start["status"] == 200 and b'"unknown"' in body["body"]
    # Served by the lean ASGI path: Django's middleware stack (which adds X-Frame-Options) never ran.
    assert b"x-frame-options" not in {name.lower() for name, _ in start["headers"]}


def test_celery_app_and_wsgi_import():
    result = subprocess.run(
        [sys.executable, "-c", "import zenzefi.wsgi; from zenzefi.celery import app; print(app.main)"],
        env={**os.environ, "DEBUG": "true", "ZENZEFI_VAR_DIR": "var/test"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "zenzefi" in result.stdout


# --- Issue 15: settings without side effects; keys independent of SECRET_KEY ----------------


@pytest.mark.parametrize("name", ["WEBHOOK_SIGNING_KEY", "PAYMENT_WEBHOOK_SECRET"])
def test_signing_keys_required_when_debug_off(name):
    result = _settings_probe({"DEBUG": "false", "SECRET_KEY": "x" * 50, name: ""}, "1")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and f"{name} is required" in result.stderr


@pytest.mark.parametrize("debug", ["false", "true"])
def test_rotating_secret_key_keeps_webhook_and_payment_secrets(debug):
    """An endpoint's signing secret (and the payment callback key) do not follow SECRET_KEY."""
    expr = (
        "__import__('webhooks.signing').signing.secret_key_bytes(uid='e1', salt='s1').hex(), "
        "s.PAYMENT_WEBHOOK_SECRET"
    )
    # DEBUG: the built-in defaults (the suite's values dropped); otherwise the configured keys.
    value = "" if debug == "true" else "k" * 40
    keys = {"WEBHOOK_SIGNING_KEY": value, "PAYMENT_WEBHOOK_SECRET": value}
    outputs = set()
    for secret_key in ("first-secret-key-" + "a" * 40, "rotated-secret-key-" + "b" * 40):
        result = _settings_probe({"DEBUG": debug, "SECRET_KEY": secret_key, **keys}, expr)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.add(result.stdout.strip())
    assert len(outputs) == 1
    assert "first-secret-key" not in outputs.pop()


def test_importing_settings_creates_no_folder(tmp_path):
    var = tmp_path / "var-does-not-exist"
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'zenzefi.settings'; "
        "from django.conf import settings; settings.DATABASES; "
        f"print(os.path.exists({str(var)!r}), flush=True); "
        "import django; django.setup(); "
        f"print(os.path.isdir({str(var / 'celery-broker' / 'control')!r}))"
    )
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "ZENZEFI_VAR_DIR": str(var), "DEBUG": "true"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Import: nothing on disk. Startup (django.setup): the embedded database's and broker's folders.
    assert result.stdout.split() == ["False", "True"]
