"""The streaming proxy against a real upstream (aiohttp on 127.0.0.1) through a real uvicorn."""

# ruff: noqa: F811  (pytest fixtures imported from tests.upstream, then used as arguments)
from __future__ import annotations

import asyncio
import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY

from audit.models import AuditLog
from proxy.models import ProxySession
from proxy.state import get_state
from tests.upstream import (  # noqa: F401
    BACKEND_URL,
    DEVICE,
    all_queries,
    creds,
    customer,
    fake_clock,
    free_port,
    issue,
    live_platform,
    proxy,
    token,
    upstream_server,
)
from tokens.models import AccessToken, Scope
from tokens.services import token_revoke

pytestmark = pytest.mark.django_db(transaction=True)
PROXY = BACKEND_URL + "/api/v1/proxy"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def eventually(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def header_dict(seen: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in seen["headers"]}


# --- forwarding --------------------------------------------------------------------------------


def test_method_path_query_and_body_are_forwarded(proxy, token):
    _, plain = token
    resp = proxy.post(
        "/echo/a%20b/c", params={"q": "1", "w": "два"}, content=b"payload-bytes", headers=creds(plain)
    )
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"].startswith("/echo/a%20b/c?")
    assert seen["path"] == "/echo/a b/c"
    assert seen["query"] == "q=1&w=%D0%B4%D0%B2%D0%B0"
    assert seen["body_length"] == len(b"payload-bytes")

    for method in ("PUT", "PATCH", "DELETE", "OPTIONS"):
        assert proxy.request(method, "/echo/m", headers=creds(plain)).json()["method"] == method
    head = proxy.head("/echo/h", headers=creds(plain))
    assert head.status_code == 200 and head.content == b""


def test_headers_stripped_and_forwarding_headers_set(proxy, token, live_platform, upstream_server, settings):
    _, plain = token
    cookie = f"{settings.PROXY_SESSION_COOKIE}=ours; sessionid=django; csrftoken=csrf; upstream_pref=kept"
    resp = proxy.get(
        "/echo/headers",
        headers=creds(
            plain,
            Authorization="Bearer platform-jwt",
            Cookie=cookie,
            Connection="keep-alive, X-Hop-Listed",
            **{
                "X-Hop-Listed": "secret",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic eA==",
                "X-Forwarded-For": "6.6.6.6",
                "X-Custom": "passes",
                "Accept-Encoding": "br, gzip;q=0.8, zstd",
                "Forwarded": "for=6.6.6.6",
                "X-Real-IP": "6.6.6.6",
            },
        ),
    )
    assert resp.status_code == 200
    headers = header_dict(resp.json())
    for name in (
        "x-access-token",
        "x-device-id",
        "authorization",
        "x-hop-listed",
        "keep-alive",
        "proxy-authorization",
        "connection",
        "forwarded",
        "x-real-ip",
    ):
        assert name not in headers, name
    assert headers["cookie"] == "upstream_pref=kept"
    assert headers["x-custom"] == "passes"
    assert headers["host"] == f"127.0.0.1:{upstream_server.port}"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{live_platform.port}"
    assert headers["accept-encoding"] == "gzip;q=0.8"  # only codings the rewriter can decode


def test_upstream_status_codes_pass_through(proxy, token):
    _, plain = token
    assert proxy.get("/status/404", headers=creds(plain)).status_code == 404
    assert proxy.get("/status/503", headers=creds(plain)).status_code == 503


# --- authentication, device, scope -------------------------------------------------------------


def test_missing_device_id_is_400(proxy, token):
    _, plain = token
    resp = proxy.get("/echo/x", headers={"X-Access-Token": plain})
    assert resp.status_code == 400
    assert resp.json() == {"detail": "The X-Device-ID header is required.", "code": "device_id_required"}


def test_missing_or_unknown_token_is_401(proxy, transactional_db, upstream_server):
    assert proxy.get("/echo/x", headers={"X-Device-ID": DEVICE}).json()["code"] == "unknown"
    resp = proxy.get("/echo/x", headers=creds("not-a-real-token"))
    assert resp.status_code == 401
    assert resp.json()["code"] == "unknown"
    assert upstream_server.requests == []


def test_revoked_token_rejected_at_once(proxy, token, customer):
    row, plain = token
    assert proxy.get("/echo/x", headers=creds(plain)).status_code == 200
    token_revoke(token_id=row.pk, actor=customer)  # transactional test: its on_commit tombstone runs
    resp = proxy.get("/echo/x", headers=creds(plain))
    assert resp.status_code == 401
    assert resp.json()["code"] == "revoked"


def test_expired_token_rejected_at_once(proxy, token):
    _, plain = token
    assert proxy.get("/echo/x", headers=creds(plain)).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=5), tick=True):
        resp = proxy.get("/echo/x", headers=creds(plain))
    assert resp.status_code == 401
    assert resp.json()["code"] == "expired"


def test_inactive_owner_rejected(proxy, token, customer):
    _, plain = token
    customer.is_active = False
    customer.save()
    resp = proxy.get("/echo/x", headers=creds(plain))
    assert resp.status_code == 401
    assert resp.json()["code"] == "inactive_user"


def test_certificates_only_scope(proxy, customer, upstream_server):
    _, plain = issue(customer, scope=Scope.CERTIFICATES_ONLY)
    assert proxy.get("/certificates/list", headers=creds(plain)).status_code == 200
    for path in ("/echo/x", "/certificates", "/x/certificates/", "/certificates%3bx/list"):
        resp = proxy.get(path, headers=creds(plain))
        assert resp.status_code == 403, path
        assert resp.json()["code"] == "scope_forbidden"
    for path in ("/certificates/%2e%2e/echo/x", "/certificates/a%2F..%2F..%2Fecho"):
        resp = proxy.get(path, headers=creds(plain))
        assert resp.status_code == 400, path
        assert resp.json()["code"] == "invalid_path"
    assert [r["path"] for r in upstream_server.requests] == ["/certificates/list"]


def test_dot_segments_cannot_leave_the_upstream_root(proxy, token):
    _, plain = token
    # (httpx resolves literal dot-segments itself; encoded ones reach the server as they are)
    resp = proxy.get("/echo/%2e%2e/%2E%2E/x", headers=creds(plain))
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_path"
    # An encoded dot segment is ambiguous (servers disagree on it): refused even inside the root.
    assert proxy.get("/a/b/%2e%2e/echo", headers=creds(plain)).json()["code"] == "invalid_path"


def test_device_conflict_then_takeover_after_idle(proxy, token):
    row, plain = token
    assert proxy.get("/echo/1", headers=creds(plain, "device-A")).status_code == 200
    resp = proxy.get("/echo/2", headers=creds(plain, "device-B"))
    assert resp.status_code == 409
    assert resp.json()["code"] == "device_conflict"
    assert int(resp.headers["Retry-After"]) > 0
    conflict = AuditLog.objects.get(action="proxy.device_conflict")
    assert conflict.suspicious is True
    assert conflict.resource_id == str(row.pk)
    assert conflict.details["device_id"] == "device-B"
    assert conflict.details["active_device_id"] == "device-A"
    assert conflict.details["request_id"] == resp.headers["X-Request-ID"]  # one id, end to end
    # Repeated conflicts are refused each time but audited once per minute.
    assert proxy.get("/echo/3", headers=creds(plain, "device-B")).status_code == 409
    assert AuditLog.objects.filter(action="proxy.device_conflict").count() == 1
    # The first device keeps working.
    assert proxy.get("/echo/4", headers=creds(plain, "device-A")).status_code == 200
    first = ProxySession.objects.get(token=row)
    assert eventually(lambda: (get_state().counters(first.key) or {}).get("n") == 2)

    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=True):
        assert proxy.get("/echo/5", headers=creds(plain, "device-B")).status_code == 200
        assert proxy.get("/echo/6", headers=creds(plain, "device-A")).status_code == 409
    old, new = ProxySession.objects.filter(token=row).order_by("started_at")
    assert old.device_id == "device-A" and old.ended_at is not None
    assert old.request_count == 2  # its final counters were written when it ended
    assert new.device_id == "device-B" and new.ended_at is None


def test_status_validates_without_activating(proxy, token):
    row, plain = token
    resp = proxy.get("/status", headers=creds(plain))
    assert resp.status_code == 200
    body = resp.json()
    assert body["valid"] is True
    assert body["token"]["id"] == row.pk
    assert body["token"]["activated"] is False and body["token"]["expires_at"] is None
    assert body["session"]["active"] is False
    row.refresh_from_db()
    assert row.activated_at is None
    assert not ProxySession.objects.exists()

    assert proxy.get("/echo/x", headers=creds(plain)).status_code == 200
    body = proxy.get("/status", headers=creds(plain)).json()
    assert body["token"]["activated"] is True
    assert 3500 < body["token"]["time_left_seconds"] <= 3600
    assert body["session"]["active"] is True
    assert proxy.get("/status", headers=creds(plain, "device-B")).status_code == 409
    assert proxy.post("/status", headers=creds(plain)).status_code == 405
    head = proxy.head("/status", headers=creds(plain))
    assert head.status_code == 200 and head.content == b""


def test_first_request_activates_exactly_once_under_concurrency(proxy, token, live_platform):
    row, plain = token

    def call(i):
        with httpx.Client(base_url=live_platform.url + "/api/v1/proxy", timeout=30) as client:
            return client.get(f"/echo/{i}", headers=creds(plain)).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(call, range(8))) == [200] * 8
    row.refresh_from_db()
    assert row.activated_at is not None
    assert row.expires_at == row.activated_at + timedelta(hours=1)
    assert AuditLog.objects.filter(action="token.activate", resource_id=str(row.pk)).count() == 1
    assert ProxySession.objects.filter(token=row).count() == 1


def test_upstream_server_error_is_an_answer_and_activates(proxy, token):
    """SPEC §8: only a request the upstream answered claims the device or activates the token. An
    upstream 5xx IS the upstream's answer (it was reached and served the request); only our own
    502/503/504 (tests/test_proxy_hardening.py) are not."""
    row, plain = token
    resp = proxy.get("/status/500", headers=creds(plain))
    assert resp.status_code == 500 and resp.text == "status"
    row.refresh_from_db()
    assert row.activated_at is not None
    assert ProxySession.objects.filter(token=row, device_id=DEVICE).count() == 1
    assert proxy.get("/echo/x", headers=creds(plain, "device-B")).status_code == 409


def test_platform_origin_accepts_no_browser_cookie(proxy, token, settings):
    """Browser mode lives on PROXY_ORIGIN only (tests/test_proxy_origin.py): on the platform's
    origin the proxy cookie authenticates nothing, not even a valid one."""
    from zenzefi.kv import get_kv

    row, plain = token
    sid = "a-valid-browser-session-id-" + "x" * 20
    get_kv().set(f"pxck:{sid}", {"d": row.digest, "dev": DEVICE}, 600)
    cookie = {"Cookie": f"{settings.PROXY_SESSION_COOKIE}={sid}"}
    for path in ("/echo/x", "/status"):
        resp = proxy.get(path, headers=cookie)
        assert resp.status_code == 401, path
        assert resp.json()["code"] == "unknown"
    assert proxy.post("/session", headers=cookie).status_code == 401
    assert proxy.get("/session", headers=creds(plain)).status_code == 405


# --- rewriting, cookies, encodings -------------------------------------------------------------


def test_html_css_js_rewritten(proxy, token, upstream_server):
    _, plain = token
    html = proxy.get("/page.html", headers=creds(plain))
    assert html.status_code == 200
    text = html.text
    assert f'href="{PROXY}/style.css"' in text
    assert f'src="{PROXY}/app.js"' in text
    assert f'href="{PROXY}/certificates/list?x=1"' in text
    assert "http://example.com/" in text
    assert f"{upstream_server.base}0/no" in text  # another port is not ours
    assert "etag" not in html.headers
    assert int(html.headers.get("content-length", len(html.content))) == len(html.content)

    css = proxy.get("/style.css", headers=creds(plain)).text
    assert f"url({PROXY}/img/bg.png)" in css
    js = proxy.get("/app.js", headers=creds(plain)).text
    assert f'"{PROXY}/api"' in js
    assert '"https:\\/\\/zz.example.com\\/api\\/v1\\/proxy\\/esc"' in js


def test_url_split_across_chunks_is_rewritten(proxy, token):
    _, plain = token
    resp = proxy.get("/split.html", headers=creds(plain))
    assert resp.text == f'<a href="{PROXY}/certificates/split">split</a>'


def test_location_rewritten(proxy, token):
    _, plain = token
    resp = proxy.get("/redirect", headers=creds(plain))
    assert resp.status_code == 302  # redirects are not followed by the proxy
    assert resp.headers["location"] == f"{PROXY}/certificates/target?y=2"
    assert proxy.get("/redirect?to=rel", headers=creds(plain)).headers["location"] == f"{PROXY}/login"
    assert proxy.get("/redirect?to=ext", headers=creds(plain)).headers["location"] == "https://example.com/x"


def test_two_set_cookie_headers_without_domain(proxy, token):
    _, plain = token
    resp = proxy.get("/cookies", headers=creds(plain))
    cookies = resp.headers.get_list("set-cookie")
    assert cookies == [
        "first=1; Path=/api/v1/proxy/",
        "second=2; Path=/api/v1/proxy/app; HttpOnly",
    ]


def test_upstream_cookies_are_never_replayed_by_the_proxy(proxy, token, customer, upstream_server):
    """The shared upstream client has no cookie jar: one customer's upstream cookies never reach
    the upstream on another request (only the client itself sends cookies back)."""
    _, plain = token
    _, other = issue(customer)
    assert len(proxy.get("/cookies", headers=creds(plain)).headers.get_list("set-cookie")) == 2
    proxy.cookies.clear()
    seen = proxy.get("/echo/next", headers=creds(other, "device-Z")).json()
    assert "cookie" not in header_dict(seen)


def test_gzip_passthrough_is_byte_exact(proxy, token, upstream_server):
    _, plain = token
    with (
        httpx.Client() as direct,
        direct.stream("GET", upstream_server.base + "/gzip/json", headers={"Accept-Encoding": "gzip"}) as r,
    ):
        expected = b"".join(r.iter_raw())
        expected_headers = r.headers
    with proxy.stream("GET", "/gzip/json", headers=creds(plain, **{"Accept-Encoding": "gzip"})) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["content-length"] == expected_headers["content-length"]
    assert raw == expected
    assert json.loads(gzip.decompress(raw))["items"][-1] == 1999


def test_gzip_html_is_decoded_and_rewritten(proxy, token):
    _, plain = token
    with proxy.stream("GET", "/gzip/html", headers=creds(plain, **{"Accept-Encoding": "gzip"})) as r:
        raw = b"".join(r.iter_raw())
        assert "content-encoding" not in r.headers
    assert raw == f'<a href="{PROXY}/certificates/gz">gz</a>'.encode() * 500


def test_websocket_upgrade_is_501(proxy, token):
    _, plain = token
    headers = creds(
        plain,
        Connection="Upgrade",
        Upgrade="websocket",
        **{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"},
    )
    resp = proxy.get("/ws", headers=headers)
    assert resp.status_code == 501


# --- failures ----------------------------------------------------------------------------------


def test_upstream_down_is_502_and_breaker_opens(proxy, token, settings, upstream_server, fake_clock):
    _, plain = token
    settings.ZENZEFI_TARGET_URL = f"http://127.0.0.1:{free_port()}"
    settings.PROXY_CIRCUIT_FAILURES = 2
    settings.PROXY_CIRCUIT_COOLDOWN = 60
    for _ in range(2):
        resp = proxy.get("/echo/x", headers=creds(plain))
        assert resp.status_code == 502
        assert resp.json()["code"] == "upstream_unavailable"
    resp = proxy.get("/echo/x", headers=creds(plain))
    assert resp.status_code == 503
    assert resp.json()["code"] == "upstream_circuit_open"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # Open for the whole cool-down: the upstream being back changes nothing yet.
    settings.ZENZEFI_TARGET_URL = upstream_server.base
    fake_clock.advance(50)
    resp = proxy.get("/echo/x", headers=creds(plain))
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) <= 10
    assert upstream_server.requests == []
    # After the cool-down one probe goes through; the upstream is back, so the breaker closes.
    fake_clock.advance(11)
    assert proxy.get("/echo/x", headers=creds(plain)).status_code == 200
    assert proxy.get("/echo/y", headers=creds(plain)).status_code == 200
    row = AccessToken.objects.get(digest=token[0].digest)
    assert row.activated_at is not None  # activated by the first request that reached the upstream


def test_failed_probe_opens_the_breaker_again(proxy, token, settings, fake_clock):
    _, plain = token
    settings.ZENZEFI_TARGET_URL = f"http://127.0.0.1:{free_port()}"
    settings.PROXY_CIRCUIT_FAILURES = 1
    settings.PROXY_CIRCUIT_COOLDOWN = 60
    assert proxy.get("/echo/x", headers=creds(plain)).status_code == 502
    assert proxy.get("/echo/x", headers=creds(plain)).status_code == 503
    fake_clock.advance(61)
    probe = proxy.get("/echo/x", headers=creds(plain))  # the probe: still down
    assert probe.status_code == 502
    again = proxy.get("/echo/x", headers=creds(plain))
    assert again.status_code == 503 and again.json()["code"] == "upstream_circuit_open"
    assert int(again.headers["Retry-After"]) >= 59  # a fresh cool-down


def test_health_check_verdict_opens_the_breaker(proxy, token, settings, fake_clock):
    from datetime import UTC, datetime

    from monitoring.health import HEALTH_KEY
    from proxy.breaker import HEALTH_POLL_SECONDS
    from zenzefi.kv import get_kv

    _, plain = token
    settings.PROXY_CIRCUIT_COOLDOWN = 60
    assert proxy.get("/echo/ok", headers=creds(plain)).status_code == 200
    verdict = {
        "status": "unhealthy",
        "checked_at": datetime.fromtimestamp(fake_clock.time() + 1, tz=UTC).isoformat(),
        "components": {"upstream": {"status": "unhealthy", "error": "refused"}},
    }
    get_kv().set(HEALTH_KEY, verdict, 600)
    fake_clock.advance(HEALTH_POLL_SECONDS)  # the worker's next look at the verdict is due
    resp = proxy.get("/echo/x", headers=creds(plain))
    assert resp.status_code == 503
    assert resp.json()["code"] == "upstream_circuit_open"
    # After the cool-down a probe reaches the (healthy) upstream and closes the breaker; the same,
    # now older, verdict does not open it again.
    fake_clock.advance(61)
    assert proxy.get("/echo/probe", headers=creds(plain)).status_code == 200
    fake_clock.advance(HEALTH_POLL_SECONDS)
    assert proxy.get("/echo/after", headers=creds(plain)).status_code == 200


def test_slow_upstream_is_504_within_the_read_timeout(proxy, token, settings, upstream_server):
    _, plain = token
    settings.PROXY_READ_TIMEOUT = 0.5
    resp = proxy.get("/hold/read-timeout", headers=creds(plain))
    # The upstream had not answered (it answers only when released): the 504 is the read timeout's.
    answered = "hold:read-timeout:answered" in upstream_server.events
    upstream_server.release("read-timeout")
    assert resp.status_code == 504
    assert resp.json()["code"] == "upstream_timeout"
    assert "hold:read-timeout:waiting" in upstream_server.events and not answered


def test_rate_limit_per_token(proxy, token, settings):
    row, plain = token
    settings.PROXY_RATE_LIMIT_PER_MINUTE = 3
    before = sample("rate_limit_hits_total", scope="proxy")
    # A fixed instant early in a minute: the four requests share one window.
    with time_machine.travel(timezone.now().replace(second=1) + timedelta(minutes=1), tick=True):
        codes = [proxy.get("/echo/x", headers=creds(plain)).status_code for _ in range(3)]
        resp = proxy.get("/echo/x", headers=creds(plain))
        again = proxy.get("/echo/x", headers=creds(plain))
    assert codes == [200, 200, 200]
    assert resp.status_code == 429 and again.status_code == 429
    assert resp.json()["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert sample("rate_limit_hits_total", scope="proxy") == before + 2
    assert AuditLog.objects.filter(action="rate_limit.hit", resource_id=str(row.pk)).count() == 1
    # Another token has its own budget.
    _, other = issue(row.user)
    assert proxy.get("/echo/x", headers=creds(other, "device-Z")).status_code == 200


# --- sessions, counters, metrics ---------------------------------------------------------------


def test_counters_flushed_into_session_rows(proxy, token):
    from proxy.tasks import close_idle_sessions, flush_proxy_counters

    row, plain = token
    sent = 0
    received = 0
    for i in range(3):
        body = b"x" * (1000 * (i + 1))
        resp = proxy.post(f"/echo/{i}", content=body, headers=creds(plain))
        sent += len(body)
        received += len(resp.content)
    session = ProxySession.objects.get(token=row)
    assert session.request_count == 0  # nothing written on the hot path

    # A request's counters reach the kv just after its response (write-through in these tests).
    assert eventually(lambda: (get_state().counters(session.key) or {}).get("n") == 3)
    assert flush_proxy_counters() == 1
    session.refresh_from_db()
    assert (session.request_count, session.bytes_in, session.bytes_out) == (3, sent, received)
    assert session.last_seen > session.started_at
    assert session.device_id == DEVICE and session.ip == "127.0.0.1" and session.user_id == row.user_id
    assert flush_proxy_counters() == 0  # idempotent
    session.refresh_from_db()
    assert session.request_count == 3

    assert close_idle_sessions() == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert close_idle_sessions() == 1
        assert close_idle_sessions() == 0
    session.refresh_from_db()
    assert session.ended_at == session.last_seen + timedelta(minutes=5)
    assert session.request_count == 3


def test_counters_are_batched_per_worker(proxy, token, settings):
    """Counters wait in the worker's batch until it is written (the interval's end, or at once
    when the interval is 0), all sessions of the batch in one go. No wall clock: the interval is
    an hour, and the write is made to happen by the next request with the interval at 0."""
    from proxy.tasks import flush_proxy_counters

    row, plain = token
    settings.PROXY_COUNTER_FLUSH_SECONDS = 3600
    for i in range(4):
        assert proxy.get(f"/echo/{i}", headers=creds(plain)).status_code == 200
    flush_proxy_counters()
    session = ProxySession.objects.get(token=row)
    assert session.request_count < 4  # still in the worker's batch
    settings.PROXY_COUNTER_FLUSH_SECONDS = 0
    assert proxy.get("/echo/last", headers=creds(plain)).status_code == 200

    def written() -> bool:  # the count follows the response (a poll, not a timed assertion)
        flush_proxy_counters()
        return ProxySession.objects.get(pk=session.pk).request_count == 5  # the batch + the last

    assert eventually(written, 10.0)


def test_steady_state_request_makes_no_database_query(proxy, token):
    _, plain = token
    for i in range(2):  # session start + activation, then the validation cache refill
        assert proxy.get(f"/echo/warm{i}", headers=creds(plain)).status_code == 200
    with all_queries() as queries:
        for i in range(3):
            assert proxy.post(f"/echo/steady{i}", content=b"body", headers=creds(plain)).status_code == 200
        assert proxy.get("/page.html", headers=creds(plain)).status_code == 200
    assert queries == []


@pytest.mark.skipif(not settings.REDIS_URL, reason="the embedded default's kv is one thread hop per step")
def test_steady_state_request_makes_no_thread_hop(token, upstream_server, settings):
    """The proxy's real path (ProxyApp, not a helper): once the session is open, the token active
    and its validation entry cached, a request runs on the event loop alone: no sync_to_async,
    no asyncio.to_thread, no executor of any kind (each would be a loop.run_in_executor)."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from proxy.asgi import ProxyApp

    settings.ZENZEFI_TARGET_URL = upstream_server.base
    settings.BACKEND_URL = BACKEND_URL
    settings.PROXY_COUNTER_FLUSH_SECONDS = 0  # the counters' write is on the path too
    settings.PROXY_MAX_CONCURRENT_PER_TOKEN = 10  # and the in-flight set's entry and release
    _, plain = token
    app = ProxyApp()
    hops: list = []

    async def get(path: str) -> int:
        statuses = []
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/v1/proxy" + path,
            "raw_path": ("/api/v1/proxy" + path).encode(),
            "query_string": b"",
            "headers": [
                (b"host", b"zz.example.com"),
                *((k.lower().encode(), v.encode()) for k, v in creds(plain).items()),
            ],
            "client": ("127.0.0.1", 50000),
            "scheme": "https",
        }

        async def receive():
            await asyncio.Event().wait()  # the client stays connected

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        return statuses[0]

    async def run():
        loop = asyncio.get_running_loop()
        for i in range(2):  # session start + activation, then the validation cache refill
            assert await get(f"/echo/warm{i}") == 200
        await asyncio.sleep(0.05)  # background work of the warm-up (in-flight release) settles
        original = loop.run_in_executor

        def counting(executor, func, *args):
            hops.append(getattr(func, "func", func))
            return original(executor, func, *args)

        loop.run_in_executor = counting
        try:
            for i in range(3):
                assert await get(f"/echo/steady{i}") == 200
            await asyncio.sleep(0.05)  # and the steady requests' releases
        finally:
            loop.run_in_executor = original
            await app.aclose()
            await sync_to_async(connections.close_all)()  # validation's thread (the warm-up's miss)

    asyncio.run(run())
    assert hops == []


def test_metrics_recorded(proxy, token):
    _, plain = token
    before = sample("proxy_requests_total", method="GET", status_code="200")
    before_out = sample("proxy_bytes_transferred_total", direction="out")
    before_hist = sample("proxy_request_duration_seconds_count")
    resp = proxy.get("/echo/m", headers=creds(plain))
    # Recorded when the request ends, just after the client has its response.
    assert eventually(lambda: sample("proxy_requests_total", method="GET", status_code="200") == before + 1)
    assert sample("proxy_bytes_transferred_total", direction="out") == before_out + len(resp.content)
    assert sample("proxy_request_duration_seconds_count") == before_hist + 1
    proxy.get("/echo/m", headers={"X-Device-ID": DEVICE})
    assert eventually(lambda: sample("proxy_requests_total", method="GET", status_code="401") >= 1)
    assert sample("active_proxy_sessions") == 1


def test_request_id_reaches_the_upstream_and_comes_back(proxy, token):
    _, plain = token
    resp = proxy.get("/echo/headers", headers=creds(plain, **{"X-Request-ID": "client-chosen-id-123"}))
    assert resp.status_code == 200
    upstream_sees = header_dict(resp.json())["x-request-id"]
    assert upstream_sees == resp.headers["x-request-id"]
    bad = proxy.get("/echo/headers", headers=creds(plain, **{"X-Request-ID": "bad id\twith tabs" * 20}))
    generated = header_dict(bad.json())["x-request-id"]
    assert generated == bad.headers["x-request-id"] and "\t" not in generated
