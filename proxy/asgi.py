"""The streaming proxy: a raw ASGI app for `/api/v1/proxy/…`, routed by `zenzefi/asgi.py`.

It runs none of Django's middleware or request signals (each costs a thread hop under ASGI; see
ENGINEERING.md "The proxy"): it shares settings, the token validation service, the key-value store,
the services and the metrics with the rest of the platform.

    GET  /api/v1/proxy/status    token + session info (validates, never activates)
    POST /api/v1/proxy/session   browser mode: an httponly cookie bound to the token and device
    ANY  /api/v1/proxy/<path>    streamed to ZENZEFI_TARGET_URL/<path>?<query>

Steady state (token cached, session open, token activated) makes no database query: token check,
rate limit and device check are one pipelined kv round trip (redis.asyncio on Redis), session
counters are batched per worker (`proxy.state`). Session starts, activation and audit entries go to
the database through `proxy.services` in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes

import aiohttp
from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import close_old_connections
from yarl import URL

from monitoring.health import HEALTH_KEY, UNHEALTHY
from proxy import client as upstream
from proxy import services
from proxy.metrics import (
    method_label,
    proxy_bytes_transferred_total,
    proxy_request_duration_seconds,
    proxy_requests_total,
)
from proxy.rewrite import DECODABLE, PROXY_PREFIX, REWRITE_TYPES, BodyRewriter, rewriter
from proxy.state import device_key, get_state
from tokens.models import Scope, token_digest
from tokens.validation import (
    EXPIRED,
    INACTIVE_USER,
    MAX_TOKEN_LENGTH,
    REVOKED,
    UNKNOWN,
    TokenCheck,
    avalidate_digest,
    cache_key,
    check_cached,
)
from zenzefi.kv import get_kv
from zenzefi.metrics import rate_limit_hits_total
from zenzefi.request_id import current_request_id

logger = logging.getLogger("proxy")

PREFIX = PROXY_PREFIX + "/"
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade"}
)
# Never forwarded upstream: hop-by-hop, our credentials, and forwarding headers we set ourselves.
REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"x-access-token",
    b"x-device-id",
    b"authorization",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
    b"x-real-ip",
    b"x-request-id",
    b"expect",
}
ACCEPTED_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "identity"})
DEVICE_RE = re.compile(r"[\x21-\x7e]{1,128}")
REASON_DETAIL = {
    UNKNOWN: "Unknown access token.",
    REVOKED: "This access token has been revoked.",
    EXPIRED: "This access token has expired.",
    INACTIVE_USER: "The owner of this access token is deactivated.",
}
STREAM_TOUCH_SECONDS = 30.0
HEALTH_POLL_SECONDS = 5.0  # how often a worker reads the health-check job's verdict

_proxy_hits = rate_limit_hits_total.labels(scope="proxy")
_bytes_in = proxy_bytes_transferred_total.labels(direction="in")
_bytes_out = proxy_bytes_transferred_total.labels(direction="out")
_request_counters: dict[tuple[str, int], object] = {}


class ProxyError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: list | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or []


class ClientGone(Exception):
    """The client disconnected while we were reading its request body."""


def _db(fn):
    """A service call from the event loop: in a worker thread, its connection closed afterwards
    (the proxy runs outside Django's request cycle, which would otherwise do that)."""

    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


class CircuitBreaker:
    """Per worker process. After `threshold` consecutive connection failures it opens: requests get
    503 at once until `cooldown` has passed; then one probe goes through and closes it again on
    success (or re-opens it on failure)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.last_success = getattr(self, "last_success", 0.0)  # wall clock of the last upstream answer
        self.failures = 0
        self.opened_at: float | None = None
        self.probe_started: float | None = None

    def check(self, now: float, cooldown: float) -> float | None:
        """None: go ahead. A number: refused, retry after that many seconds."""
        if self.opened_at is None:
            return None
        waited = now - self.opened_at
        if waited < cooldown:
            return cooldown - waited
        if self.probe_started is not None and now - self.probe_started < cooldown:
            return 1.0  # a probe is under way
        self.probe_started = now
        return None

    def success(self) -> None:
        self.last_success = time.time()
        if self.failures or self.opened_at is not None:
            self.reset()

    def trip(self, now: float) -> None:
        """Open now (the health check found the upstream down), unless already open."""
        if self.opened_at is None:
            self.opened_at = now
            self.probe_started = None

    def failure(self, now: float, threshold: int) -> None:
        self.failures += 1
        if self.probe_started is not None or self.failures >= threshold:
            self.opened_at = now
            self.probe_started = None


class _Ctx:
    """Per-request bookkeeping."""

    __slots__ = (
        "body_done",
        "bytes_in",
        "bytes_out",
        "client_gone",
        "done",
        "ip",
        "reported_in",
        "reported_out",
        "user_agent",
    )

    def __init__(self, ip: str | None, user_agent: str):
        self.ip = ip
        self.user_agent = user_agent
        self.bytes_in = self.bytes_out = self.reported_in = self.reported_out = 0
        self.body_done = True
        self.client_gone = False
        self.done = False


class Admission:
    """Who is asking (a valid token and the device) and what the kv said in the same round trip."""

    __slots__ = ("check", "count", "device", "digest", "record")

    def __init__(self, check: TokenCheck, device: str, digest: str, count: int, record: dict | None):
        self.check, self.device, self.digest, self.count, self.record = check, device, digest, count, record


def _count_request(method: str, status: int) -> None:
    key = (method, status)
    counter = _request_counters.get(key)
    if counter is None:
        counter = _request_counters[key] = proxy_requests_total.labels(method_label(method), str(status))
    counter.inc()


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> int:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
    return status


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=UTC)
    return value.isoformat().replace("+00:00", "Z")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def upstream_path(raw: bytes) -> tuple[str, list[bytes]] | None:
    """The upstream path for a raw request path under the prefix, dot-segments resolved (so
    `/certificates/../x` cannot slip past the scope check), the client's encoding kept.
    Returns (path to forward, decoded segments), or None for a path that tries to climb out."""
    rest = raw[len(PREFIX) - 1 :]  # starts with "/"
    raw_segments = rest.split(b"/")[1:]
    out_raw: list[bytes] = []
    out_dec: list[bytes] = []
    last = len(raw_segments) - 1
    for i, seg in enumerate(raw_segments):
        dec = unquote_to_bytes(seg) if b"%" in seg else seg
        if dec in (b".", b".."):
            if dec == b"..":
                if not out_raw:
                    return None
                out_raw.pop()
                out_dec.pop()
            if i == last:  # "/a/." and "/a/b/.." keep their trailing slash
                out_raw.append(b"")
                out_dec.append(b"")
            continue
        out_raw.append(seg)
        out_dec.append(dec)
    return "/" + b"/".join(out_raw).decode("latin-1"), out_dec


def scope_allows(scope: str | None, segments: list[bytes]) -> bool:
    if scope == Scope.FULL:
        return True
    if scope == Scope.CERTIFICATES_ONLY:
        # Only /certificates/…; decoded separators inside a segment (%2F, %5C) are refused, as an
        # upstream on Windows may treat them as path separators.
        return (
            len(segments) >= 2
            and segments[0] == b"certificates"
            and not any(b"/" in s or b"\\" in s or b"\x00" in s for s in segments)
        )
    return False


def _accept_encoding(value: str) -> str:
    """Only codings the rewriter can decode (gzip, deflate): a text body can always be rewritten."""
    keep = [
        item.strip() for item in value.split(",") if item.split(";")[0].strip().lower() in ACCEPTED_CODINGS
    ]
    return ", ".join(keep) or "identity"


class ProxyApp:
    def __init__(self):
        self.breaker = CircuitBreaker()
        self._activated: set[int] = set()
        self._db_recycle_at = 0.0
        self._start_locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, dict] = {}  # session key -> counters not yet written to the kv
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_tasks: set[asyncio.Task] = set()
        self._health_read_at = 0.0  # monotonic time of the last look at the health check's result

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
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
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": data.encode()})
        else:
            await send({"type": "websocket.close", "code": 1008})
        _count_request("GET", 501)

    async def http(self, scope, receive, send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        status = 500
        try:
            status = await self._http(scope, receive, send, method)
        except ProxyError as exc:
            status = await _send_json(send, exc.status, {"detail": exc.detail, "code": exc.code}, exc.headers)
        except Exception:  # e.g. Redis or the database down: a JSON 500 if nothing was sent yet
            logger.exception("proxy: request failed")
            status = 500
            with contextlib.suppress(Exception):  # the response may have started already
                await _send_json(send, 500, {"detail": "Internal proxy error.", "code": "proxy_error"})
        finally:
            _count_request(method, status)
            proxy_request_duration_seconds.observe(time.perf_counter() - started)

    # --- request handling ----------------------------------------------------------------
    async def _http(self, scope, receive, send, method: str) -> int:
        token = device = sid = None
        user_agent = ""
        has_body = False
        for name, value in scope["headers"]:
            if name == b"x-access-token":
                token = value.decode("latin-1").strip()
            elif name == b"x-device-id":
                device = value.decode("latin-1").strip()
            elif name == b"cookie" and sid is None:
                sid = self._our_cookie(value)
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"content-length":
                has_body = value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"upgrade" and b"websocket" in value.lower():
                raise ProxyError(501, "websocket_unsupported", "WebSocket is not supported by the proxy.")
        client = scope.get("client")
        ctx = _Ctx(client[0] if client else None, user_agent)
        sub = scope["path"][len(PREFIX) - 1 :]

        if sub == "/status":
            if method not in ("GET", "HEAD"):
                raise ProxyError(405, "method_not_allowed", "Use GET.", [(b"allow", b"GET, HEAD")])
            adm = await self._authenticate(token, device, sid)
            return await self._status(send, adm, ctx)
        if sub == "/session":
            if method != "POST":
                raise ProxyError(405, "method_not_allowed", "Use POST.", [(b"allow", b"POST")])
            adm = await self._authenticate(token, device, None)
            return await self._browser_session(send, adm, ctx)
        adm = await self._authenticate(token, device, sid)
        return await self._forward(scope, receive, send, method, adm, ctx, has_body)

    @staticmethod
    def _our_cookie(header: bytes) -> str | None:
        name = settings.PROXY_SESSION_COOKIE.encode()
        for part in header.split(b";"):
            key, _, value = part.strip().partition(b"=")
            if key == name and value:
                return value.decode("latin-1")
        return None

    async def _authenticate(self, token: str | None, device: str | None, sid: str | None) -> Admission:
        """Token (header, or the browser cookie's digest) and device; the kv round trip that also
        counts the request and reads the active session. 400/401 on bad credentials."""
        if token:
            if not device:
                raise ProxyError(400, "device_id_required", "The X-Device-ID header is required.")
            if not DEVICE_RE.fullmatch(device):
                raise ProxyError(400, "device_id_invalid", "X-Device-ID must be 1-128 printable characters.")
            if len(token) > MAX_TOKEN_LENGTH:
                raise ProxyError(401, UNKNOWN, REASON_DETAIL[UNKNOWN])
            digest = token_digest(token)
        elif sid:
            mapping = await get_kv().aget(f"pxck:{sid}") if len(sid) <= 128 else None
            if not mapping:
                raise ProxyError(401, UNKNOWN, "Unknown or expired proxy session; start a new one.")
            digest, device = mapping["d"], mapping["dev"]
        else:
            raise ProxyError(401, UNKNOWN, "An access token is required (X-Access-Token).")
        cached, count, record = await get_state().admit(digest, int(time.time() // 60), cache_key(digest))
        check = check_cached(cached, digest) if cached is not None else await avalidate_digest(digest)
        if not check.valid:
            reason = check.reason or UNKNOWN
            raise ProxyError(401, reason, REASON_DETAIL.get(reason, "Invalid access token."))
        return Admission(check, device, digest, count, record)

    async def _admit(self, adm: Admission, ctx: _Ctx, *, start: bool) -> dict | None:
        """Rate limit, then one token = one device. Returns the active session record (starting
        one when `start`), raises 429/409 otherwise."""
        now = time.time()
        check = adm.check
        limit = settings.PROXY_RATE_LIMIT_PER_MINUTE
        if limit and adm.count > limit:
            _proxy_hits.inc()
            if adm.count == limit + 1:  # audit once per token and window, not once per refused request
                await _db(services.audit_rate_limit)(
                    token_id=check.token_id,
                    user_id=check.user_id,
                    limit=limit,
                    ip=ctx.ip,
                    user_agent=ctx.user_agent,
                )
            retry = str(max(1, 60 - int(now % 60))).encode()
            raise ProxyError(
                429, "rate_limited", "Too many requests for this token.", [(b"retry-after", retry)]
            )
        idle = settings.SESSION_IDLE_MINUTES * 60
        record = adm.record
        if record and now - record["ts"] < idle:
            if record["dev"] == adm.device:
                return record
            await self._conflict(adm, record, ctx, idle, now)
        if not start:
            return None
        # In-process lock first (the file cache's add() is not atomic between threads), then the
        # kv claim between processes.
        lock = self._start_locks.get(adm.digest)
        if lock is None:
            lock = self._start_locks[adm.digest] = asyncio.Lock()
        try:
            async with lock:
                return await self._start_session(adm, ctx, idle)
        finally:
            idle_lock = not lock.locked() and not getattr(lock, "_waiters", None)
            if idle_lock and self._start_locks.get(adm.digest) is lock:
                del self._start_locks[adm.digest]

    async def _conflict(self, adm: Admission, record: dict, ctx: _Ctx, idle: int, now: float):
        check = adm.check
        if await get_kv().aset(f"pxconf:{adm.digest}:{_hash(adm.device)}", 1, 60, nx=True):
            await _db(services.device_conflict_record)(
                token_id=check.token_id,
                user_id=check.user_id,
                device_id=adm.device,
                active_device=record["dev"],
                ip=ctx.ip,
                user_agent=ctx.user_agent,
            )
        wait = max(1, int(idle - (now - record["ts"])) + 1)
        raise ProxyError(
            409,
            "device_conflict",
            "This access token is in use on another device. It becomes free after "
            f"{settings.SESSION_IDLE_MINUTES} minutes without requests from that device.",
            [(b"retry-after", str(wait).encode())],
        )

    async def _start_session(self, adm: Admission, ctx: _Ctx, idle: int) -> dict:
        """Only one request starts a token's session (a short kv lock); concurrent first requests
        of the same device wait for it and join, another device gets 409."""
        kv = get_kv()
        claim = f"pxclaim:{adm.digest}"
        key = device_key(adm.digest)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while True:
            if await kv.aset(claim, adm.device, 10, nx=True):
                try:
                    record = await kv.aget(key)
                    now = time.time()
                    if record and now - record["ts"] < idle:
                        if record["dev"] == adm.device:
                            return record
                        await self._conflict(adm, record, ctx, idle, now)
                    sid = uuid.uuid4().hex
                    await _db(services.session_start)(
                        token_id=adm.check.token_id,
                        user_id=adm.check.user_id,
                        device_id=adm.device,
                        key=sid,
                        ip=ctx.ip,
                        user_agent=ctx.user_agent,
                        now=datetime.fromtimestamp(now, tz=UTC),
                    )
                    record = {"dev": adm.device, "sid": sid, "tid": adm.check.token_id, "st": now, "ts": now}
                    await kv.aset(key, record, idle + 600)
                    return record
                finally:
                    await kv.adelete(claim)
            if loop.time() > deadline:
                raise ProxyError(
                    503, "session_busy", "The session is starting; retry.", [(b"retry-after", b"1")]
                )
            await asyncio.sleep(0.02)
            record = await kv.aget(key)
            now = time.time()
            if record and now - record["ts"] < idle:
                if record["dev"] == adm.device:
                    return record
                await self._conflict(adm, record, ctx, idle, now)

    # --- session counters (batched per worker) -------------------------------------------
    async def _record_use(self, adm: Admission, record: dict, ctx: _Ctx, *, final: bool = True) -> None:
        """Count this request's bytes (and the request itself when `final`) for its session; the
        batch reaches the kv within PROXY_COUNTER_FLUSH_SECONDS (at once when that is 0)."""
        bytes_in, bytes_out = ctx.bytes_in - ctx.reported_in, ctx.bytes_out - ctx.reported_out
        ctx.reported_in, ctx.reported_out = ctx.bytes_in, ctx.bytes_out
        if bytes_in:
            _bytes_in.inc(bytes_in)
        if bytes_out:
            _bytes_out.inc(bytes_out)
        sid = record["sid"]
        entry = self._pending.get(sid)
        if entry is None:
            entry = self._pending[sid] = {"digest": adm.digest, "record": record, "n": 0, "bi": 0, "bo": 0}
        entry["n"] += 1 if final else 0
        entry["bi"] += bytes_in
        entry["bo"] += bytes_out
        entry["ts"] = time.time()
        interval = settings.PROXY_COUNTER_FLUSH_SECONDS
        if interval <= 0:
            await self.flush_counters()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(interval, self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_handle = None
        task = asyncio.ensure_future(self.flush_counters())
        self._flush_tasks.add(task)
        task.add_done_callback(self._flush_tasks.discard)

    async def flush_counters(self) -> None:
        if not self._pending:
            return
        entries, self._pending = list(self._pending.values()), {}
        try:
            await get_state().touch_many(entries, settings.SESSION_IDLE_MINUTES * 60 + 600)
        except Exception:  # counters are statistics: a lost batch is logged, never a failed request
            logger.exception("proxy: could not write %d session counter batches", len(entries))

    async def aclose(self) -> None:
        """Worker shutdown: write what is pending, close the upstream pool."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        await self.flush_counters()
        await upstream.close_session()

    # --- status and browser session ------------------------------------------------------
    async def _status(self, send, adm: Admission, ctx: _Ctx) -> int:
        record = await self._admit(adm, ctx, start=False)
        now = time.time()
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
        return await _send_json(send, 200, body)

    async def _browser_session(self, send, adm: Admission, ctx: _Ctx) -> int:
        await self._admit(adm, ctx, start=False)  # rate limit and device conflict
        check = adm.check
        now = time.time()
        left = check.expires_at.timestamp() - now if check.expires_at else (check.duration_hours or 1) * 3600
        ttl = max(1, int(min(settings.PROXY_SESSION_COOKIE_MAX_AGE, left)))
        sid = secrets.token_urlsafe(32)
        await get_kv().aset(f"pxck:{sid}", {"d": adm.digest, "dev": adm.device}, ttl)
        cookie = (
            f"{settings.PROXY_SESSION_COOKIE}={sid}; Path=/; Max-Age={ttl}; HttpOnly; "
            f"SameSite={settings.COOKIE_SAMESITE}"
        )
        if settings.COOKIE_SECURE:
            cookie += "; Secure"
        body = {
            "detail": "Browser session started.",
            "expires_in": ttl,
            "cookie": settings.PROXY_SESSION_COOKIE,
        }
        return await _send_json(send, 200, body, [(b"set-cookie", cookie.encode())])

    # --- forwarding ----------------------------------------------------------------------
    def _upstream_headers(self, scope, host: bytes | None) -> list[tuple[str, str]]:
        ours = {settings.PROXY_SESSION_COOKIE, settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
        connection_listed: set[bytes] = set()
        for name, value in scope["headers"]:
            if name == b"connection":
                connection_listed.update(t.strip().lower() for t in value.split(b","))
        out: list[tuple[str, str]] = []
        for name, value in scope["headers"]:
            if name in REQUEST_DROP or name.startswith(b"proxy-") or name in connection_listed:
                continue
            text = value.decode("latin-1")
            if name == b"cookie":
                kept = [p for p in text.split(";") if p.split("=", 1)[0].strip() not in ours and p.strip()]
                if not kept:
                    continue
                text = ";".join(kept).strip()
            elif name == b"accept-encoding":
                text = _accept_encoding(text)
            out.append((name.decode("latin-1"), text))
        client = scope.get("client")
        if client:
            out.append(("X-Forwarded-For", client[0]))
        out.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
        if host:
            out.append(("X-Forwarded-Host", host.decode("latin-1")))
        request_id = current_request_id()
        if request_id:
            out.append(("X-Request-ID", request_id))
        return out

    async def _request_body(self, receive, ctx: _Ctx) -> AsyncIterator[bytes]:
        ctx.body_done = False
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                ctx.client_gone = True
                raise ClientGone()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if chunk:
                ctx.bytes_in += len(chunk)
                yield chunk
        ctx.body_done = True

    def _maybe_recycle_db(self) -> None:
        """Token validation's cache misses run in asgiref's shared thread outside any request cycle:
        let Django close (or health-check) that thread's connection now and then."""
        now = time.monotonic()
        if now >= self._db_recycle_at:
            self._db_recycle_at = now + 30.0
            asyncio.get_running_loop().run_in_executor(
                SyncToAsync.single_thread_executor, close_old_connections
            )

    async def _forward(
        self, scope, receive, send, method: str, adm: Admission, ctx: _Ctx, has_body: bool
    ) -> int:
        check = adm.check
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        resolved = upstream_path(raw_path)
        if resolved is None:
            raise ProxyError(400, "invalid_path", "The path leaves the upstream's root.")
        path, segments = resolved
        if not scope_allows(check.scope, segments):
            raise ProxyError(403, "scope_forbidden", "This access token only reaches /certificates/.")
        record = await self._admit(adm, ctx, start=True)
        self._maybe_recycle_db()

        now = time.monotonic()
        if now - self._health_read_at >= HEALTH_POLL_SECONDS:
            self._health_read_at = now
            await self._follow_health_check(now)
        retry = self.breaker.check(now, settings.PROXY_CIRCUIT_COOLDOWN)
        if retry is not None:
            raise ProxyError(
                503,
                "upstream_circuit_open",
                "The Zenzefi host is unavailable; retry later.",
                [(b"retry-after", str(max(1, round(retry))).encode())],
            )

        rw = rewriter(settings.ZENZEFI_TARGET_URL, settings.BACKEND_URL)
        query = scope.get("query_string") or b""
        url = rw.target_base + path + ("?" + query.decode("latin-1") if query else "")
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        headers = self._upstream_headers(scope, host)
        session = upstream.get_session()
        try:
            resp = await self._send_upstream(session, method, url, headers, receive, ctx, has_body)
        except ClientGone:
            return 499
        except ProxyError:
            if ctx.client_gone:
                return 499
            raise

        try:
            if resp.status < 500 and check.activated_at is None and check.token_id not in self._activated:
                try:
                    await _db(services.token_activate_for_proxy)(
                        token_id=check.token_id, ip=ctx.ip, user_agent=ctx.user_agent
                    )
                    self._activated.add(check.token_id)
                except Exception:  # the customer still gets the answer; the next request retries
                    logger.exception("proxy: could not activate token %s", check.token_id)
            return await self._respond(resp, send, receive, method, rw, ctx, adm, record)
        finally:
            resp.close()  # no-op once the body was read and the connection released to the pool
            await self._record_use(adm, record, ctx)

    async def _follow_health_check(self, now: float) -> None:
        """The health-check job's verdict (kv, every HEALTH_POLL_SECONDS per worker): an upstream it
        found unreachable after our last good answer opens the breaker; probes then close it."""
        try:
            result = await get_kv().aget(HEALTH_KEY)
            upstream_health = (result or {}).get("components", {}).get("upstream", {})
            if upstream_health.get("status") != UNHEALTHY:
                return
            checked = datetime.fromisoformat(result["checked_at"]).timestamp()
        except Exception:  # no verdict (or no store): the breaker's own counting still works
            return
        if checked > self.breaker.last_success:
            self.breaker.trip(now)

    async def _send_upstream(self, session, method, url, headers, receive, ctx: _Ctx, has_body: bool):
        threshold = settings.PROXY_CIRCUIT_FAILURES
        attempts = 1 if has_body or method not in ("GET", "HEAD", "OPTIONS") else 2
        for attempt in range(attempts):
            try:
                resp = await session.request(
                    method,
                    URL(url, encoded=True),
                    headers=headers,
                    data=self._request_body(receive, ctx) if has_body else None,
                    allow_redirects=False,
                    timeout=upstream.timeouts(),
                )
            except ClientGone:
                raise
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection the upstream had just closed: retry once if safe.
                if attempt + 1 < attempts:
                    continue
                self.breaker.failure(time.monotonic(), threshold)
                raise ProxyError(
                    502, "upstream_unavailable", "The Zenzefi host closed the connection."
                ) from None
            except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError) as exc:
                if isinstance(exc, aiohttp.ConnectionTimeoutError):
                    self.breaker.failure(time.monotonic(), threshold)
                else:
                    self.breaker.success()
                raise ProxyError(
                    504, "upstream_timeout", "The Zenzefi host did not answer in time."
                ) from None
            except TimeoutError:
                raise ProxyError(
                    504, "upstream_timeout", "The Zenzefi host did not answer in time."
                ) from None
            except aiohttp.ClientConnectorError:
                self.breaker.failure(time.monotonic(), threshold)
                raise ProxyError(502, "upstream_unavailable", "The Zenzefi host is unreachable.") from None
            except aiohttp.ClientError:
                if ctx.client_gone:
                    raise ClientGone() from None
                self.breaker.failure(time.monotonic(), threshold)
                raise ProxyError(502, "upstream_unavailable", "The Zenzefi host failed to answer.") from None
            self.breaker.success()
            return resp
        raise AssertionError("unreachable")

    async def _respond(self, resp, send, receive, method, rw, ctx: _Ctx, adm: Admission, record) -> int:
        status = resp.status
        raw = resp.raw_headers
        connection_listed: set[bytes] = set()
        for name, value in raw:
            if name.lower() == b"connection":
                connection_listed.update(t.strip().lower() for t in value.split(b","))
        headers = []
        ctype = cenc = None
        for name, value in raw:
            name = name.lower()
            if name in HOP_BY_HOP or name.startswith(b"proxy-") or name in connection_listed:
                continue
            if name == b"location":
                value = rw.location(value.decode("latin-1")).encode("latin-1")
            elif name == b"set-cookie":
                value = rw.set_cookie(value)
            elif name == b"content-type":
                ctype = value
            elif name == b"content-encoding":
                cenc = value
            headers.append((name, value))

        body_rewriter = None
        if ctype and method != "HEAD" and status not in (204, 206, 304):
            mime = ctype.split(b";", 1)[0].strip().lower()
            if mime in REWRITE_TYPES:
                encoding = cenc.strip().lower() if cenc else None
                if encoding in (None, b"identity") or encoding in DECODABLE:
                    body_rewriter = BodyRewriter(rw, encoding if encoding in DECODABLE else None)
                    drop = {b"content-length", b"etag", b"content-md5"}
                    if encoding in DECODABLE:
                        drop.add(b"content-encoding")
                    headers = [h for h in headers if h[0] not in drop]

        await send({"type": "http.response.start", "status": status, "headers": headers})
        await self._stream(resp, send, receive, ctx, body_rewriter, adm, record)
        return status

    async def _stream(self, resp, send, receive, ctx: _Ctx, body_rewriter, adm: Admission, record) -> None:
        """Raw bytes (or rewritten text) to the client as they come. The upstream response is
        released when read to the end and closed otherwise (client gone, upstream error)."""
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        watcher = None
        content = resp.content
        complete = False
        next_touch = loop.time() + STREAM_TOUCH_SECONDS
        try:
            while True:
                chunk = await content.readany()
                eof = not chunk or content.at_eof()
                out = chunk
                if body_rewriter is not None:
                    out = body_rewriter.feed(chunk) if chunk else b""
                    if eof:
                        out += body_rewriter.flush()
                if out or eof:
                    await send({"type": "http.response.body", "body": out, "more_body": not eof})
                    ctx.bytes_out += len(out)
                if eof:
                    complete = True
                    break
                if watcher is None and ctx.body_done:
                    watcher = asyncio.ensure_future(self._watch_disconnect(receive, task, ctx))
                if loop.time() >= next_touch:
                    next_touch = loop.time() + STREAM_TOUCH_SECONDS
                    await self._record_use(adm, record, ctx, final=False)
        except asyncio.CancelledError:
            if not ctx.client_gone:
                raise
            task.uncancel()
        except (aiohttp.ClientError, TimeoutError, zlib.error) as exc:
            # Too late for an error status: the client sees a cut-off body (the connection closes).
            logger.warning("proxy: upstream body failed after the response started: %r", exc)
        finally:
            ctx.done = True
            if watcher is not None:
                watcher.cancel()
            if complete:
                resp.release()
            else:
                resp.close()

    @staticmethod
    async def _watch_disconnect(receive, task, ctx: _Ctx) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not ctx.done:
                    ctx.client_gone = True
                    task.cancel()
                return
