"""The proxy under hostile or heavy use (issue 11 items 4 and 6, issue 13's proxy bullets), against
a real upstream through a real uvicorn.

- Java path parameters and override headers cannot escape a certificates_only scope.
- Content-Length together with Transfer-Encoding is a 400.
- A stalled request body times out (408), the upstream request is aborted.
- Requests in flight per token are capped (429) and every exit path releases its slot.
- The async Redis pool waits for a connection: a small pool under many concurrent requests, 0 × 5xx.
- Redis unreachable: 503 service_unavailable with Retry-After, one log line.
- Only a request the upstream answered claims the device or activates the token.
- Exactly one Server and one Date header.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.upstream, then used as arguments)
from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from proxy.models import ProxySession
from proxy.state import device_key, inflight_key
from tests.upstream import (  # noqa: F401
    DEVICE,
    LiveServer,
    creds,
    customer,
    free_port,
    issue,
    live_platform,
    proxy,
    token,
    upstream_server,
)
from tokens.models import Scope
from zenzefi.kv import RedisKV, get_kv

pytestmark = pytest.mark.django_db(transaction=True)


def eventually(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def inflight(digest: str) -> int:
    kv = get_kv()
    if isinstance(kv, RedisKV):
        return int(kv.client.zcard(kv.full_key(inflight_key(digest))))
    return int(kv.get(inflight_key(digest)) or 0)


def raw_request(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes to the live server and read until it closes the connection (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


# --- item 4: Java path parameters and override headers -------------------------------------------


JAVA_ESCAPES = [
    "/certificates/..;/echo/admin",
    "/certificates/..;jsessionid=x/echo/admin",
    "/certificates/..%3b/echo/admin",
    "/certificates/%2e%2e;/echo/admin",
    "/certificates/%252e%252e/echo/admin",
    "/certificates/..%2Fecho/admin",
    "/certificates/..%5cecho",
    "/..;/echo/admin",
]


def test_java_path_parameter_escapes_are_400_and_never_forwarded(proxy, customer, upstream_server):
    _, plain = issue(customer, scope=Scope.CERTIFICATES_ONLY)
    for path in JAVA_ESCAPES:
        resp = proxy.get(path, headers=creds(plain))
        assert resp.status_code == 400, path
        assert resp.json()["code"] == "invalid_path", path
    assert upstream_server.requests == []
    # A legitimate Java session parameter inside the scope still goes through, as sent.
    seen = proxy.get("/certificates/list;jsessionid=abc", headers=creds(plain)).json()
    assert seen["raw_path"] == "/certificates/list;jsessionid=abc"


def test_override_headers_never_reach_the_upstream(proxy, customer):
    _, plain = issue(customer, scope=Scope.CERTIFICATES_ONLY)
    overrides = {
        "X-Original-URL": "/admin",
        "X-Rewrite-URL": "/admin",
        "X-Override-URL": "/admin",
        "X-Original-URI": "/admin",
        "X-Forwarded-Prefix": "/admin",
        "X-Forwarded-Path": "/admin",
        "X-Forwarded-Uri": "/admin",
        "X-HTTP-Method-Override": "DELETE",
        "X-HTTP-Method": "DELETE",
        "X-Method-Override": "DELETE",
        "X-Original-Host": "evil.example",
        "X-Host": "evil.example",
    }
    seen = proxy.get("/certificates/list", headers=creds(plain, **overrides)).json()
    sent = {k.lower() for k, _ in seen["headers"]}
    assert not sent & {name.lower() for name in overrides}, sent & {name.lower() for name in overrides}


# --- item 4: request framing -------------------------------------------------------------------


def test_content_length_with_transfer_encoding_is_refused_by_the_app():
    """The app refuses it whatever the server's parser let through."""
    from zenzefi.asgi import application

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/proxy/echo/x",
        "raw_path": b"/api/v1/proxy/echo/x",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"x-access-token", b"t" * 64),
            (b"x-device-id", b"d"),
            (b"content-length", b"5"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 1),
        "scheme": "http",
    }
    asyncio.run(application(scope, receive, send))
    start = sent[0]
    assert start["status"] == 400
    assert (b"connection", b"close") in start["headers"]
    assert b'"code": "invalid_request"' in sent[1]["body"]


@pytest.fixture
def h11_platform():
    from zenzefi.asgi import application

    server = LiveServer(application, http="h11").start()
    yield server
    server.stop()


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_content_length_with_transfer_encoding_through_uvicorn(
    parser, proxy, token, live_platform, upstream_server, request
):
    """uvicorn's httptools parser (llhttp) refuses the request itself; its h11 parser accepts it,
    takes the chunked framing and hands both headers to the app, which refuses it. Either way
    nothing reaches the upstream and the answer is a 400."""
    _, plain = token
    server = request.getfixturevalue("h11_platform") if parser == "h11" else live_platform
    smuggle = (
        f"POST /api/v1/proxy/echo/smuggle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Access-Token: {plain}\r\n"
        f"X-Device-ID: {DEVICE}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\nGET /api/v1/proxy/echo/second HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    ).encode()
    answer = raw_request(server.port, smuggle, timeout=5)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    if parser == "h11":
        assert b'"code": "invalid_request"' in answer
    assert upstream_server.requests == []


# --- item 4: body timeout and per-token concurrency ----------------------------------------------


def test_stalled_body_times_out_and_the_upstream_request_is_aborted(
    proxy, token, live_platform, upstream_server, settings
):
    row, plain = token
    settings.PROXY_BODY_TIMEOUT = 0.5
    head = (
        f"POST /api/v1/proxy/echo/slow-body HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Access-Token: {plain}\r\n"
        f"X-Device-ID: {DEVICE}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    # The client never sends the rest: only the body timeout can answer before raw_request gives up.
    answer = raw_request(live_platform.port, head + b"x" * 10, timeout=30)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b'"code": "body_timeout"' in answer
    assert upstream_server.requests == []  # the upstream never got a complete request
    assert eventually(lambda: inflight(row.digest) == 0)
    # No answer from the upstream: nothing claimed, nothing activated.
    row.refresh_from_db()
    assert row.activated_at is None and not ProxySession.objects.filter(token=row).exists()
    # The worker is fine: the next request goes through.
    assert proxy.get("/echo/after", headers=creds(plain)).status_code == 200


def test_concurrency_cap_per_token(proxy, token, customer, settings, upstream_server):
    row, plain = token
    settings.PROXY_MAX_CONCURRENT_PER_TOKEN = 2
    _, other = issue(customer)
    with ThreadPoolExecutor(2) as pool:
        # Two requests the upstream holds until the test releases them: in flight for as long as
        # the test needs.
        held = [pool.submit(proxy.get, f"/hold/cap-{i}", headers=creds(plain)) for i in range(2)]
        assert eventually(lambda: inflight(row.digest) == 2)
        refused = proxy.get("/echo/third", headers=creds(plain))
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_concurrent"
        assert refused.headers["retry-after"] == "1"
        # Another token is not affected.
        assert proxy.get("/echo/other", headers=creds(other, "device-other")).status_code == 200
        for i in range(2):
            upstream_server.release(f"cap-{i}")
        assert [f.result().status_code for f in held] == [200, 200]
    assert eventually(lambda: inflight(row.digest) == 0)
    assert proxy.get("/echo/after", headers=creds(plain)).status_code == 200


def test_concurrency_slot_released_on_every_exit_path(proxy, token, customer, live_platform, settings):
    row, plain = token
    settings.PROXY_MAX_CONCURRENT_PER_TOKEN = 1

    def released() -> bool:
        return eventually(lambda: inflight(row.digest) == 0)

    assert proxy.get("/echo/ok", headers=creds(plain)).status_code == 200
    assert released()
    assert proxy.get("/a/%2e%2e/b", headers=creds(plain)).status_code == 400
    assert released()
    assert proxy.get("/status/500", headers=creds(plain)).status_code == 500
    assert released()
    # Client disconnect in the middle of a large download.
    with (
        httpx.Client(base_url=str(proxy.base_url), timeout=30) as client,
        client.stream("GET", "/big", params={"size": str(50 * 1024 * 1024)}, headers=creds(plain)) as resp,
    ):
        assert resp.status_code == 200
        next(resp.iter_raw())
    assert released()
    # Upstream unreachable: our own 502.
    settings.ZENZEFI_TARGET_URL = f"http://127.0.0.1:{free_port()}"
    assert proxy.get("/echo/down", headers=creds(plain)).status_code == 502
    assert released()
    # Rate limited (429) and invalid token (401) hold no slot either.
    settings.PROXY_RATE_LIMIT_PER_MINUTE = 1
    assert proxy.get("/echo/limited", headers=creds(plain)).status_code == 429
    assert released()
    assert proxy.get("/echo/x", headers=creds("x" * 64)).status_code == 401


# --- item 4: the async Redis pool waits ----------------------------------------------------------


@pytest.fixture
def small_redis_pool(settings):
    if not settings.REDIS_URL:
        pytest.skip("the async Redis pool exists only with REDIS_URL (the embedded default has no pool)")
    settings.REDIS_POOL_SIZE = 2
    get_kv.cache_clear()  # a new kv: every event loop builds its client with the small pool
    yield
    get_kv.cache_clear()


def test_small_redis_pool_under_many_concurrent_requests_has_no_5xx(
    proxy, token, live_platform, small_redis_pool, settings
):
    _, plain = token
    settings.PROXY_MAX_CONCURRENT_PER_TOKEN = 0

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=str(proxy.base_url), timeout=60, limits=limits) as client:
            answers = await asyncio.gather(
                *(client.get(f"/echo/{i}", headers=creds(plain)) for i in range(200)), return_exceptions=True
            )
        return [a.status_code if isinstance(a, httpx.Response) else 599 for a in answers]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 200, sorted(set(statuses))


# --- item 6: Redis unreachable -------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    original = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    get_kv.cache_clear()
    yield
    settings.REDIS_URL = original
    get_kv.cache_clear()


def test_redis_unreachable_is_503_with_one_log_line(proxy, token, redis_down, caplog, settings):
    _, plain = token
    caplog.set_level(logging.INFO, logger="proxy")
    for _ in range(5):
        resp = proxy.get("/echo/x", headers=creds(plain))
        assert resp.status_code == 503
        assert resp.json() == {
            "detail": "The service is temporarily unavailable. Please try again shortly.",
            "code": "service_unavailable",
        }
        assert resp.headers["retry-after"] == str(settings.SERVICE_UNAVAILABLE_RETRY_AFTER)
        assert resp.headers["content-security-policy"] == "sandbox"
        assert "Traceback" not in resp.text
    assert proxy.get("/status", headers=creds(plain)).status_code == 503
    assert proxy.post("/session", headers=creds(plain)).status_code == 503
    records = [r for r in caplog.records if r.name == "proxy"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.ERROR and records[0].exc_info is None
    assert "unreachable" in records[0].getMessage()


# --- issue 13: only a request the upstream answered claims the device -----------------------------


def test_upstream_down_claims_nothing(proxy, token, settings, upstream_server):
    row, plain = token
    up = settings.ZENZEFI_TARGET_URL
    settings.ZENZEFI_TARGET_URL = f"http://127.0.0.1:{free_port()}"
    resp = proxy.get("/echo/x", headers=creds(plain, "laptop-1"))
    assert resp.status_code == 502 and resp.json()["code"] == "upstream_unavailable"
    settings.PROXY_CIRCUIT_FAILURES = 1
    assert proxy.get("/echo/x", headers=creds(plain, "laptop-1")).status_code == 502
    circuit = proxy.get("/echo/x", headers=creds(plain, "laptop-1"))
    assert circuit.status_code == 503 and circuit.json()["code"] == "upstream_circuit_open"
    row.refresh_from_db()
    assert row.activated_at is None
    assert not ProxySession.objects.filter(token=row).exists()
    assert get_kv().get(device_key(row.digest)) is None
    # Upstream back: another device takes the token at once (no 409 for 5 minutes).
    from zenzefi.asgi import proxy_application

    proxy_application.breaker.reset()
    settings.ZENZEFI_TARGET_URL = up
    assert proxy.get("/echo/y", headers=creds(plain, "desktop-2")).status_code == 200
    row.refresh_from_db()
    assert row.activated_at is not None
    assert list(ProxySession.objects.filter(token=row).values_list("device_id", flat=True)) == ["desktop-2"]


def test_upstream_timeout_claims_nothing(proxy, token, settings, upstream_server):
    row, plain = token
    settings.PROXY_READ_TIMEOUT = 0.3
    resp = proxy.get("/hold/claims-nothing", headers=creds(plain, "laptop-1"))
    upstream_server.release("claims-nothing")  # the upstream answers only after the 504
    assert resp.status_code == 504
    row.refresh_from_db()
    assert row.activated_at is None and not ProxySession.objects.filter(token=row).exists()
    assert proxy.get("/echo/y", headers=creds(plain, "desktop-2")).status_code == 200


# --- issue 13: one Server and one Date header ------------------------------------------------------


def test_exactly_one_server_and_one_date_header(proxy, token):
    _, plain = token
    for path in ("/echo/x", "/page.html", "/status/404"):
        resp = proxy.get(path, headers=creds(plain))
        assert len(resp.headers.get_list("server")) == 1, (path, resp.headers.get_list("server"))
        assert len(resp.headers.get_list("date")) == 1, (path, resp.headers.get_list("date"))
        assert resp.headers["server"] == "uvicorn"  # the upstream's own is dropped
