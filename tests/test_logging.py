"""Logs for operators: JSON lines (LOG_FORMAT), the request id from the edge to the response header,
the log lines and the audit entries, and no credentials in any log line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory

from audit.models import AuditLog
from zenzefi.logs import REDACTED, JsonFormatter, PlainFormatter, RedactFilter, RequestIdFilter, redact
from zenzefi.request_id import (
    RequestIdASGIMiddleware,
    RequestIdMiddleware,
    current_request_id,
    request_id_from_asgi_headers,
    sanitize_request_id,
)

BASE_DIR = Path(settings.BASE_DIR)
HEX32 = re.compile(r"[0-9a-f]{32}")
SECRET_TOKEN = "Zq3x-secret-token-value-9f8e7d6c5b4a"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo0Mn0.c2lnbmF0dXJlLXZhbHVl"


def _emit(formatter: logging.Formatter, record_kwargs: dict, *, extra: dict | None = None) -> str:
    logger = logging.getLogger("zenzefi.test.logging")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(*record_kwargs["args"], extra=extra, exc_info=record_kwargs.get("exc_info"))
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


# --- format -----------------------------------------------------------------------------------------


def test_json_lines_carry_time_level_logger_message_request_id_and_extras():
    line = _emit(JsonFormatter(), {"args": ("bought %s token(s)", 3)}, extra={"user_id": 7, "cost": "18.00"})
    entry = json.loads(line)
    assert entry["message"] == "bought 3 token(s)"
    assert entry["level"] == "WARNING" and entry["logger"] == "zenzefi.test.logging"
    assert entry["time"].endswith("+00:00") and entry["request_id"] == "-"
    assert entry["user_id"] == 7 and entry["cost"] == "18.00"
    assert line.count("\n") == 1  # one line per record


def test_json_lines_include_the_exception():
    try:
        raise ValueError(f"boom with token={SECRET_TOKEN}")
    except ValueError:
        line = _emit(JsonFormatter(), {"args": ("failed",), "exc_info": True})
    entry = json.loads(line)
    assert entry["exc_type"] == "ValueError" and "Traceback" in entry["exc"]
    assert SECRET_TOKEN not in line and f"token={REDACTED}" in entry["exc"]


def _settings_in_subprocess(**env) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.LOG_FORMAT, settings.LOGGING['handlers']['console']['formatter']]))"
    )
    base = {k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT", "DEBUG", "PYTEST_CURRENT_TEST"}}
    base.update(DJANGO_SETTINGS_MODULE="zenzefi.settings", SECRET_KEY="x" * 50, **env)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=base, capture_output=True, text=True, timeout=60
    )
    return {"rc": result.returncode, "out": result.stdout.strip(), "err": result.stderr}


def test_log_format_defaults_to_json_without_debug_and_plain_with_it():
    assert json.loads(_settings_in_subprocess(DEBUG="false")["out"]) == ["json", "json"]
    assert json.loads(_settings_in_subprocess(DEBUG="true")["out"]) == ["plain", "plain"]
    assert json.loads(_settings_in_subprocess(DEBUG="false", LOG_FORMAT="plain")["out"]) == ["plain", "plain"]
    bad = _settings_in_subprocess(DEBUG="false", LOG_FORMAT="xml")
    assert bad["rc"] != 0 and "LOG_FORMAT" in bad["err"]


def test_the_configured_console_handler_redacts_and_adds_the_request_id():
    handlers = [
        h for h in logging.getLogger().handlers if any(isinstance(f, RedactFilter) for f in h.filters)
    ]
    assert len(handlers) == 1, "settings.LOGGING's console handler carries the redaction filter"
    handler = handlers[0]
    assert any(isinstance(f, RequestIdFilter) for f in handler.filters)
    assert isinstance(handler.formatter, JsonFormatter if settings.LOG_FORMAT == "json" else PlainFormatter)
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        logging.getLogger("proxy").warning("upstream said no for X-Access-Token: %s", SECRET_TOKEN)
    finally:
        handler.setStream(old)
    assert SECRET_TOKEN not in stream.getvalue() and REDACTED in stream.getvalue()


# --- redaction --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {JWT}",
        f"authorization=Bearer {SECRET_TOKEN}",
        f"X-Access-Token: {SECRET_TOKEN}",
        f"headers={{'x-access-token': '{SECRET_TOKEN}', 'host': 'zenzefi'}}",
        f'{{"token": "{SECRET_TOKEN}", "token_id": 5}}',
        f"GET /api/v1/proxy/status?device=1&token={SECRET_TOKEN}&x=2",
        f"refresh={JWT}",
        f"password={SECRET_TOKEN}",
        f"Cookie: zz_proxy={SECRET_TOKEN}; sessionid=abc",
        f"a bare jwt {JWT} in text",
    ],
)
def test_redact_removes_credentials(text):
    cleaned = redact(text)
    assert SECRET_TOKEN not in cleaned and JWT not in cleaned and REDACTED in cleaned


def test_redact_leaves_ordinary_text_alone():
    text = "user 42 bought 3 tokens (duration_hours=24, token_id=9, prefix=Ab3dEf9h) in 12 ms"
    assert redact(text) == text


def test_redaction_reaches_arguments_and_extra_fields():
    line = _emit(
        JsonFormatter(),
        {"args": ("request headers %s", {"Authorization": f"Bearer {JWT}", "Accept": "text/html"})},
        extra={"access_token": SECRET_TOKEN, "query": f"token={SECRET_TOKEN}", "path": "/api/v1/tokens"},
    )
    entry = json.loads(line)
    assert SECRET_TOKEN not in line and JWT not in line
    assert entry["access_token"] == REDACTED and entry["query"] == f"token={REDACTED}"
    assert entry["path"] == "/api/v1/tokens" and "text/html" in entry["message"]
    plain = _emit(PlainFormatter("%(request_id)s %(message)s"), {"args": (f"Bearer {SECRET_TOKEN}",)})
    assert SECRET_TOKEN not in plain and plain.startswith("- Bearer")


# --- request id -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("lb-7f3a2c91", True),
        ("3f2b8c1e-9d4a-4e6b-8f7a-1c2d3e4f5a6b", True),
        ("Root=1-67891233-abcdef012345678912345678", True),
        ("bad id with spaces", False),
        ("line\nbreak", False),
        ("x" * 200, False),
        ("", False),
        ("<script>", False),
    ],
)
def test_incoming_request_ids_are_kept_only_when_sane(incoming, kept):
    assert (sanitize_request_id(incoming) == incoming) is kept


@pytest.mark.django_db
def test_request_id_round_trip_into_the_response_header(client):
    path = "/api/v1/bundles/"  # any path through Django's middleware
    response = client.get(path, HTTP_X_REQUEST_ID="lb-7f3a2c91")
    assert response["X-Request-ID"] == "lb-7f3a2c91"
    generated = client.get(path)["X-Request-ID"]
    assert HEX32.fullmatch(generated)
    replaced = client.get(path, HTTP_X_REQUEST_ID="evil\tvalue")["X-Request-ID"]
    assert HEX32.fullmatch(replaced) and replaced != generated
    assert current_request_id() is None  # nothing leaks past the request


@pytest.mark.django_db
def test_request_id_reaches_the_audit_entry(api_client):
    response = api_client.post(
        "/api/v1/auth/register",
        {"email": "rid@example.com", "username": "rid_user", "password": "Zenzefi-2026-strong"},
        format="json",
        HTTP_X_REQUEST_ID="audit-trace-0001",
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "audit-trace-0001"
    entry = AuditLog.objects.filter(action__contains="register").latest("id")
    assert entry.details["request_id"] == "audit-trace-0001"


@pytest.mark.django_db
def test_audit_entries_outside_a_request_have_no_request_id():
    from audit.services import audit_record

    entry = audit_record(action="test.no_request", details={"n": 1})
    assert "request_id" not in entry.details


def test_log_lines_inside_a_request_carry_its_id():
    seen = {}

    def view(request):
        seen["line"] = _emit(JsonFormatter(), {"args": ("inside the view",)})
        seen["attr"] = request.request_id
        return HttpResponse("ok")

    response = RequestIdMiddleware(view)(RequestFactory().get("/x", HTTP_X_REQUEST_ID="trace-42"))
    assert json.loads(seen["line"])["request_id"] == "trace-42" == seen["attr"] == response["X-Request-ID"]


def test_async_django_middleware_sets_and_returns_the_id():
    async def view(request):
        assert current_request_id() == "async-7"
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    response = asyncio.run(middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="async-7")))
    assert response["X-Request-ID"] == "async-7"


def test_asgi_middleware_for_the_lean_proxy_path():
    seen = {}

    async def app(scope, receive, send):
        seen["inside"] = current_request_id()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"spoof")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run(headers):
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "path": "/api/v1/proxy/x", "headers": headers}
        await RequestIdASGIMiddleware(app)(scope, receive, send)
        return dict(sent[0]["headers"])

    headers = asyncio.run(run([(b"x-request-id", b"desk-0042")]))
    assert headers[b"x-request-id"] == b"desk-0042" and seen["inside"] == "desk-0042"
    generated = asyncio.run(run([]))[b"x-request-id"].decode()
    assert HEX32.fullmatch(generated) and seen["inside"] == generated
    assert HEX32.fullmatch(request_id_from_asgi_headers([(b"x-request-id", b"no good")]))


@pytest.mark.django_db
def test_djangos_own_request_log_lines_carry_the_request_id(client):
    """django.request logs 4xx/5xx after the middleware returned: the id comes from the request."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        client.get(f"/no-such-page?token={SECRET_TOKEN}", HTTP_X_REQUEST_ID="nf-trace-7")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["request_id"] == "nf-trace-7" and entry["status_code"] == 404
    assert SECRET_TOKEN not in stream.getvalue()
