"""The streaming proxy: a raw ASGI app for `/api/v1/proxy/…`, routed by `zenzefi/asgi.py`.

It runs none of Django's middleware or request signals (each costs a thread hop under ASGI; see
ENGINEERING.md "The proxy"): it shares settings, the token validation service, the key-value store,
the services and the metrics with the rest of the platform.

    GET  /api/v1/proxy/status    token + session info (validates, never activates)
    POST /api/v1/proxy/session   browser mode: a one-time link into PROXY_ORIGIN
    ANY  /api/v1/proxy/<path>    streamed to ZENZEFI_TARGET_URL/<path>?<query>

Every response on the platform's origin carries `Content-Security-Policy: sandbox` and
`X-Content-Type-Options: nosniff`: the upstream's content is untrusted and never runs with the
platform's origin. Browser mode lives on its own origin (`PROXY_ORIGIN`, docs/proxy-origin.md):
`zenzefi/asgi.py` sends every request whose Host is that origin to `ProxyApp.browser`.

This module routes and puts the steps of a forwarded request in order; each concern lives in its
own module (docs/proxy.md "Module layout"): `admission` (credentials, rate limit, in-flight cap,
the device rule, session claim), `breaker`, `paths`, `headers`, `stream`, `browser`, `usage`
(session counters), `database` (service calls from the loop), `responses` (our own answers).

Steady state (token cached, session open, token activated) makes no database query and no thread
hop: token check, rate limit and device check are one kv round trip (redis.asyncio on Redis),
session counters are batched per worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from datetime import UTC, datetime

from django.conf import settings

from proxy import client as upstream
from proxy import services
from proxy.admission import Admission, Gate
from proxy.breaker import CircuitBreaker
from proxy.browser import (
    ENTER_PREFIX,
    RESERVED_PREFIX,
    authenticate_cookie,
    enter,
    entry_link,
    is_proxy_origin,
)
from proxy.clock import clock
from proxy.database import ConnectionRecycler, db_call
from proxy.headers import upstream_headers
from proxy.metrics import proxy_request_duration_seconds
from proxy.paths import PREFIX, normalise_path, scope_allows, upstream_path
from proxy.request import Ctx, read_head
from proxy.responses import (
    KV_CODE,
    KV_DETAIL,
    KV_DOWN,
    SANDBOX_HEADERS,
    BodyTimeout,
    ClientGone,
    ProxyError,
    count_request,
    sandboxed,
    send_json,
)
from proxy.rewrite import rewriter
from proxy.stream import respond, send_upstream
from proxy.usage import Usage
from zenzefi.outage import retry_after

__all__ = ["PREFIX", "ProxyApp", "is_proxy_origin"]

logger = logging.getLogger("proxy")


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=UTC)
    return value.isoformat().replace("+00:00", "Z")


def _only(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        allow = ", ".join(allowed)
        raise ProxyError(405, "method_not_allowed", f"Use {allowed[0]}.", [(b"allow", allow.encode())])


class ProxyApp:
    """One per worker process: its breaker, admission state, session-counter batch and the tokens
    it has seen activated."""

    def __init__(self):
        self.breaker = CircuitBreaker()
        self.gate = Gate()
        self.usage = Usage()
        self.recycler = ConnectionRecycler()
        self._activated: set[int] = set()

    async def __call__(self, scope, receive, send):
        """The platform's origin: /api/v1/proxy/… for the desktop client (headers only)."""
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send, browser=False)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)

    async def browser(self, scope, receive, send):
        """The proxy origin (browser mode): every path is the upstream's, the cookie authenticates."""
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send, browser=True)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)

    async def websocket(self, scope, receive, send) -> None:
        """WebSocket upgrades are out of scope: a clear 501 (a denial response where the server
        supports it, otherwise a close before accept)."""
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            data = json.dumps(
                {"detail": "WebSocket is not supported by the proxy.", "code": "websocket_unsupported"}
            )
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 501,
                    "headers": [(b"content-type", b"application/json"), *SANDBOX_HEADERS],
                }
            )
            await send({"type": "websocket.http.response.body", "body": data.encode()})
        else:
            await send({"type": "websocket.close", "code": 1008})
        count_request("GET", 501)

    async def http(self, scope, receive, send, *, browser: bool = False) -> None:
        started = time.perf_counter()
        method = scope["method"]
        status = 500
        if not browser:
            send = sandboxed(send)
        try:
            status = await self._route(scope, receive, send, method, browser)
        except ProxyError as exc:
            status = await send_json(send, exc.status, {"detail": exc.detail, "code": exc.code}, exc.headers)
        except KV_DOWN as exc:  # Redis unreachable: 503, one log line per outage, no traceback
            self.gate.kv_down(exc)
            status = 503
            with contextlib.suppress(Exception):  # the response may have started already
                await send_json(
                    send,
                    503,
                    {"detail": KV_DETAIL, "code": KV_CODE},
                    [(b"retry-after", str(retry_after()).encode())],
                )
        except Exception:  # e.g. the database down: a JSON 500 if nothing was sent yet
            logger.exception("proxy: request failed")
            status = 500
            with contextlib.suppress(Exception):  # the response may have started already
                await send_json(send, 500, {"detail": "Internal proxy error.", "code": "proxy_error"})
        finally:
            count_request(method, status)
            proxy_request_duration_seconds.observe(time.perf_counter() - started)

    # --- routing ---------------------------------------------------------------------------
    async def _route(self, scope, receive, send, method: str, browser: bool) -> int:
        head = read_head(scope, settings.PROXY_SESSION_COOKIE.encode() if browser else None)
        client = scope.get("client")
        ctx = Ctx(client[0] if client else None, head.user_agent)
        member = settings.PROXY_MAX_CONCURRENT_PER_TOKEN > 0
        gate = self.gate
        if browser:
            path = scope["path"]
            if path.startswith(RESERVED_PREFIX):
                if path.startswith(ENTER_PREFIX):
                    _only(method, ("GET", "HEAD"))
                    return await enter(gate, scope, send, ctx, path[len(ENTER_PREFIX) :])
                raise ProxyError(404, "not_found", "Reserved path.")
            adm = await authenticate_cookie(gate, head.sid, member=member)
        else:
            sub = scope["path"][len(PREFIX) - 1 :]
            if sub == "/status":
                _only(method, ("GET", "HEAD"))
                return await self._status(send, await gate.authenticate(head.token, head.device), ctx)
            if sub == "/session":
                _only(method, ("POST",))
                adm = await gate.authenticate(head.token, head.device)
                return await entry_link(gate, scope, send, adm, ctx)
            adm = await gate.authenticate(head.token, head.device, member=member)
        try:
            return await self._forward(scope, receive, send, method, adm, ctx, head.has_body, browser)
        finally:
            gate.release(adm)

    # --- GET /status -------------------------------------------------------------------------
    async def _status(self, send, adm: Admission, ctx: Ctx) -> int:
        record = await self.gate.admit(adm, ctx)
        now = clock.time()
        check = adm.check
        expires = check.expires_at
        body = {
            "valid": True,
            "device_id": adm.device,
            "token": {
                "id": check.token_id,
                "scope": check.scope,
                "duration_hours": check.duration_hours,
                "activated": check.activated,
                "activated_at": _iso(check.activated_at),
                "expires_at": _iso(expires),
                "time_left_seconds": (max(0, int(expires.timestamp() - now)) if expires else None),
            },
            "session": {
                "active": record is not None,
                "started_at": _iso(record.get("st")) if record else None,
                "last_seen": _iso(record["ts"]) if record else None,
                "idle_timeout_seconds": settings.SESSION_IDLE_MINUTES * 60,
            },
        }
        return await send_json(send, 200, body)

    # --- forwarding ----------------------------------------------------------------------
    async def _forward(
        self, scope, receive, send, method: str, adm: Admission, ctx: Ctx, has_body: bool, browser: bool
    ) -> int:
        check = adm.check
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        resolved = normalise_path(raw_path) if browser else upstream_path(raw_path)
        if resolved is None:
            raise ProxyError(400, "invalid_path", "The path leaves the upstream's root or is ambiguous.")
        path, segments = resolved
        if not scope_allows(check.scope, segments):
            raise ProxyError(403, "scope_forbidden", "This access token only reaches /certificates/.")
        record = await self.gate.admit(adm, ctx)
        self.recycler.maybe_recycle()
        await self.breaker.admit()

        if browser:
            rw = rewriter(settings.ZENZEFI_TARGET_URL, settings.PROXY_ORIGIN, "")
        else:
            rw = rewriter(settings.ZENZEFI_TARGET_URL, settings.BACKEND_URL)
        query = scope.get("query_string") or b""
        url = rw.target_base + path + ("?" + query.decode("latin-1") if query else "")
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        headers = upstream_headers(scope, host)
        try:
            resp = await send_upstream(self.breaker, method, url, headers, receive, ctx, has_body)
        except ClientGone:
            return 499
        except BodyTimeout:  # the upstream request was aborted (its connection closed)
            raise ProxyError(
                408,
                "body_timeout",
                f"The request body stalled for more than {settings.PROXY_BODY_TIMEOUT:g} s.",
                [(b"connection", b"close")],
            ) from None
        except ProxyError:
            if ctx.client_gone:
                return 499
            raise

        try:
            # The upstream answered (any status, 5xx included: that is the upstream's answer, not
            # ours): only now is the device claimed and the token activated.
            if record is None:
                record = await self.gate.claim(adm, ctx)
            if check.activated_at is None and check.token_id not in self._activated:
                try:
                    await db_call(services.token_activate_for_proxy)(
                        token_id=check.token_id, ip=ctx.ip, user_agent=ctx.user_agent
                    )
                    self._activated.add(check.token_id)
                except Exception:  # the customer still gets the answer; the next request retries
                    logger.exception("proxy: could not activate token %s", check.token_id)
            claimed = record

            def touch():
                return self.usage.record(adm.digest, claimed, ctx, final=False)

            return await respond(resp, send, receive, method, rw, ctx, browser, touch)
        finally:
            resp.close()  # no-op once the body was read and the connection released to the pool
            if record is not None:
                await self.usage.record(adm.digest, record, ctx)

    async def aclose(self) -> None:
        """Worker shutdown: write what is pending, close the upstream pool."""
        await self.usage.aclose()
        await upstream.close_session()
