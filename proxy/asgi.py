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
`zenzefi/asgi.py` sends every request whose Host is that origin to `ProxyApp.browser`, where every
path is the upstream's own path except the reserved `/__zenzefi/` (the one-time entry link
`/__zenzefi/enter/<code>` sets the httponly cookie there, host-only, and redirects into the upstream).

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
from functools import cache
from itertools import count as _counter
from urllib.parse import quote, unquote_to_bytes, urlsplit

import aiohttp
import redis.exceptions
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
from zenzefi.outage import retry_after
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
    # Override headers: some servers and frameworks (IIS URL Rewrite, Symfony/Zend, Spring's
    # ForwardedHeaderFilter, method-override filters) take the path, host or method from these
    # instead of the request line, which would bypass the scope check.
    b"x-original-url",
    b"x-rewrite-url",
    b"x-override-url",
    b"x-original-uri",
    b"x-http-destinationurl",
    b"x-forwarded-prefix",
    b"x-forwarded-path",
    b"x-forwarded-uri",
    b"x-forwarded-port",
    b"x-forwarded-server",
    b"x-forwarded-scheme",
    b"x-forwarded-ssl",
    b"x-original-host",
    b"x-host",
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
    b"front-end-https",
}
# Upstream response headers the ASGI server sets itself (exactly one Server and one Date).
RESPONSE_DROP = HOP_BY_HOP | {b"server", b"date"}
SANDBOX_HEADERS = [(b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff")]
RESERVED_PREFIX = "/__zenzefi/"  # on the proxy origin: ours, never forwarded
ENTER_PREFIX = RESERVED_PREFIX + "enter/"
NEXT_RE = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")  # root-relative, printable, no backslash
INFLIGHT_WINDOW = 600  # seconds an in-flight entry counts at most (a crashed worker's entries fade)
KV_CODE = "service_unavailable"  # SPEC §9, as zenzefi.outage answers the API and pages
KV_DETAIL = "The service is temporarily unavailable. Please try again shortly."
_MEMBER_TAG = uuid.uuid4().hex[:8]
_member_seq = _counter()
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


class BodyTimeout(Exception):
    """The client went silent for PROXY_BODY_TIMEOUT while we were reading its request body."""


KV_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@cache
def _origin_hosts(origin: str) -> frozenset[bytes]:
    """The Host header values that mean PROXY_ORIGIN: "host:port", and "host" for a default port."""
    if not origin:
        return frozenset()
    parts = urlsplit(origin)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = parts.port or default
    hosts = {f"{host}:{port}".encode()}
    if port == default:
        hosts.add(host.encode())
    return frozenset(hosts)


def is_proxy_origin(scope) -> bool:
    """Whether a request is addressed to PROXY_ORIGIN (by its Host header)."""
    hosts = _origin_hosts(settings.PROXY_ORIGIN)
    if hosts:
        for name, value in scope["headers"]:
            if name == b"host":
                return value.lower() in hosts
    return False


def _next_from_query(query: bytes) -> str:
    """The validated `next` (a root-relative upstream path) from a query string; "/" without one."""
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == b"next" and value:
            nxt = unquote_to_bytes(value.replace(b"+", b" ")).decode("latin-1")
            if not NEXT_RE.fullmatch(nxt) or nxt.startswith(RESERVED_PREFIX):
                raise ProxyError(400, "invalid_next", "`next` must be a path on the upstream, such as /x.")
            return nxt
    return "/"


def _sandboxed(send):
    """Every response on the platform's origin: CSP sandbox (no allow-same-origin) and nosniff."""

    async def wrapped(message):
        if message["type"] == "http.response.start":
            kept = [h for h in message["headers"] if h[0] != b"x-content-type-options"]
            message["headers"] = kept + SANDBOX_HEADERS
        await send(message)

    return wrapped


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
        "body_timeout",
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
        self.body_timeout = False
        self.client_gone = False
        self.done = False


class Admission:
    """Who is asking (a valid token and the device) and what the kv said in the same round trip."""

    __slots__ = ("check", "count", "device", "digest", "inflight", "member", "record")

    def __init__(self, check: TokenCheck, device: str, digest: str, count: int, record: dict | None):
        self.check, self.device, self.digest, self.count, self.record = check, device, digest, count, record
        self.inflight = 0
        self.member: str | None = None  # this request's entry in the token's in-flight set


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


_DOTS = (b".", b"..")
_SEPARATORS = re.compile(rb"[/\\]")


def _decode_fully(value: bytes) -> bytes:
    """Percent-decoding repeated until stable (double encoding: %252e -> %2e -> .)."""
    for _ in range(4):
        if b"%" not in value:
            break
        decoded = unquote_to_bytes(value)
        if decoded == value:
            break
        value = decoded
    return value


def normalise_path(rest: bytes) -> tuple[str, list[bytes]] | None:
    """The upstream path for a raw request path ("/…"), read the way Java servers (Tomcat, Spring)
    read it: `;…` path parameters end a segment's name (`..;x` is `..`), percent-encoding is
    decoded (also twice), encoded slashes may split segments. Literal dot segments are resolved (so
    `/certificates/../x` cannot slip past the scope check); a dot segment in any other form
    (`%2e%2e`, `..;`, `..%3b`, `%2e%2e;`, `%252e%252e`, inside `%2F`/`\\`) is refused, as is
    climbing above the root: None. Otherwise (path to forward, each segment's name for the scope
    check); the client's encoding of the other segments is kept."""
    raw_segments = rest.split(b"/")[1:]
    out_raw: list[bytes] = []
    out_names: list[bytes] = []
    last = len(raw_segments) - 1
    for i, seg in enumerate(raw_segments):
        if b"%" in seg or b";" in seg or b"\\" in seg:
            raw_name = seg.split(b";", 1)[0]
            name = _decode_fully(raw_name)  # Tomcat: parameters first, then decoding
            decoded = _decode_fully(seg)  # Spring and others: decoding first
            readings = (name, decoded.split(b";", 1)[0])
            if any(r in _DOTS for r in readings) and seg not in _DOTS:
                return None
            if b"/" in decoded or b"\\" in decoded:
                parts = _SEPARATORS.split(decoded)
                if any(part.split(b";", 1)[0] in _DOTS for part in parts):
                    return None
        else:
            name = seg
        if name in _DOTS:
            if name == b"..":
                if not out_raw:
                    return None
                out_raw.pop()
                out_names.pop()
            if i == last:  # "/a/." and "/a/b/.." keep their trailing slash
                out_raw.append(b"")
                out_names.append(b"")
            continue
        out_raw.append(seg)
        out_names.append(name)
    return "/" + b"/".join(out_raw).decode("latin-1"), out_names


def upstream_path(raw: bytes) -> tuple[str, list[bytes]] | None:
    """`normalise_path` for a raw path under /api/v1/proxy/."""
    return normalise_path(raw[len(PREFIX) - 1 :])


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
        self._kv_outage = False  # logged once per outage, not once per request
        self._releases: list[tuple[str, str]] = []  # in-flight entries to leave (batched)

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
        _count_request("GET", 501)

    async def http(self, scope, receive, send, *, browser: bool = False) -> None:
        started = time.perf_counter()
        method = scope["method"]
        status = 500
        if not browser:
            send = _sandboxed(send)
        try:
            status = await self._http(scope, receive, send, method, browser)
        except ProxyError as exc:
            status = await _send_json(send, exc.status, {"detail": exc.detail, "code": exc.code}, exc.headers)
        except KV_DOWN as exc:  # Redis unreachable: 503, one log line per outage, no traceback
            if not self._kv_outage:
                self._kv_outage = True
                logger.error("proxy: the key-value store (Redis) is unreachable: %s", exc)
            status = 503
            with contextlib.suppress(Exception):  # the response may have started already
                await _send_json(
                    send,
                    503,
                    {"detail": KV_DETAIL, "code": KV_CODE},
                    [(b"retry-after", str(retry_after()).encode())],
                )
        except Exception:  # e.g. the database down: a JSON 500 if nothing was sent yet
            logger.exception("proxy: request failed")
            status = 500
            with contextlib.suppress(Exception):  # the response may have started already
                await _send_json(send, 500, {"detail": "Internal proxy error.", "code": "proxy_error"})
        finally:
            _count_request(method, status)
            proxy_request_duration_seconds.observe(time.perf_counter() - started)

    # --- request handling ----------------------------------------------------------------
    async def _http(self, scope, receive, send, method: str, browser: bool) -> int:
        token = device = sid = None
        user_agent = ""
        has_body = has_length = chunked = False
        for name, value in scope["headers"]:
            if name == b"x-access-token":
                token = value.decode("latin-1").strip()
            elif name == b"x-device-id":
                device = value.decode("latin-1").strip()
            elif name == b"cookie" and sid is None and browser:
                sid = self._our_cookie(value)
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"content-length":
                has_length = True
                has_body = value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = chunked = True
            elif name == b"upgrade" and b"websocket" in value.lower():
                raise ProxyError(501, "websocket_unsupported", "WebSocket is not supported by the proxy.")
        if has_length and chunked:  # request smuggling: never guess which framing the client meant
            raise ProxyError(
                400,
                "invalid_request",
                "Content-Length and Transfer-Encoding must not be sent together.",
                [(b"connection", b"close")],
            )
        client = scope.get("client")
        ctx = _Ctx(client[0] if client else None, user_agent)

        if browser:
            path = scope["path"]
            if path.startswith(RESERVED_PREFIX):
                if path.startswith(ENTER_PREFIX):
                    if method not in ("GET", "HEAD"):
                        raise ProxyError(405, "method_not_allowed", "Use GET.", [(b"allow", b"GET, HEAD")])
                    return await self._enter(scope, send, ctx, path[len(ENTER_PREFIX) :])
                raise ProxyError(404, "not_found", "Reserved path.")
            if not sid:
                raise ProxyError(
                    401, UNKNOWN, "No browser-mode session: open the link from POST /api/v1/proxy/session."
                )
            adm = await self._authenticate_cookie(sid, member=settings.PROXY_MAX_CONCURRENT_PER_TOKEN > 0)
        else:
            sub = scope["path"][len(PREFIX) - 1 :]
            if sub == "/status":
                if method not in ("GET", "HEAD"):
                    raise ProxyError(405, "method_not_allowed", "Use GET.", [(b"allow", b"GET, HEAD")])
                adm = await self._authenticate(token, device)
                return await self._status(send, adm, ctx)
            if sub == "/session":
                if method != "POST":
                    raise ProxyError(405, "method_not_allowed", "Use POST.", [(b"allow", b"POST")])
                adm = await self._authenticate(token, device)
                return await self._browser_session(scope, send, adm, ctx)
            adm = await self._authenticate(token, device, member=settings.PROXY_MAX_CONCURRENT_PER_TOKEN > 0)
        try:
            return await self._forward(scope, receive, send, method, adm, ctx, has_body, browser)
        finally:
            self._release(adm)

    @staticmethod
    def _our_cookie(header: bytes) -> str | None:
        name = settings.PROXY_SESSION_COOKIE.encode()
        for part in header.split(b";"):
            key, _, value = part.strip().partition(b"=")
            if key == name and value:
                return value.decode("latin-1")
        return None

    async def _authenticate(self, token: str | None, device: str | None, *, member: bool = False):
        """The desktop client's headers: token and device. 400/401 on bad credentials."""
        if not token:
            raise ProxyError(401, UNKNOWN, "An access token is required (X-Access-Token).")
        if not device:
            raise ProxyError(400, "device_id_required", "The X-Device-ID header is required.")
        if not DEVICE_RE.fullmatch(device):
            raise ProxyError(400, "device_id_invalid", "X-Device-ID must be 1-128 printable characters.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise ProxyError(401, UNKNOWN, REASON_DETAIL[UNKNOWN])
        return await self._admission(token_digest(token), device, member)

    async def _authenticate_cookie(self, sid: str, *, member: bool = False) -> Admission:
        mapping = await get_kv().aget(f"pxck:{sid}") if len(sid) <= 128 else None
        if not mapping:
            raise ProxyError(401, UNKNOWN, "Unknown or expired proxy session; start a new one.")
        return await self._admission(mapping["d"], mapping["dev"], member)

    async def _admission(self, digest: str, device: str, member: bool) -> Admission:
        """The kv round trip that reads the validation entry, counts the request (rate limit and,
        for a forwarded request, the token's requests in flight) and reads the active session."""
        tag = f"{_MEMBER_TAG}:{next(_member_seq)}" if member else None
        cached, count, record, inflight = await get_state().admit(
            digest, int(time.time() // 60), cache_key(digest), tag, INFLIGHT_WINDOW
        )
        if self._kv_outage:
            self._kv_outage = False
            logger.warning("proxy: the key-value store (Redis) is reachable again")
        adm = None
        try:
            check = check_cached(cached, digest) if cached is not None else await avalidate_digest(digest)
            if not check.valid:
                reason = check.reason or UNKNOWN
                raise ProxyError(401, reason, REASON_DETAIL.get(reason, "Invalid access token."))
            adm = Admission(check, device, digest, count, record)
            adm.inflight, adm.member = inflight, tag
            return adm
        finally:
            if adm is None and tag is not None:
                self._release_member(digest, tag)

    def _release(self, adm: Admission) -> None:
        if adm.member is not None:
            self._release_member(adm.digest, adm.member)
            adm.member = None

    def _release_member(self, digest: str, tag: str) -> None:
        """Take this request out of the token's in-flight set, whatever way it ended. Batched:
        the requests that end in one turn of the event loop leave in one pipeline, from a task of
        its own (it runs even when the request's task is being cancelled)."""
        self._releases.append((digest, tag))
        if len(self._releases) == 1:
            asyncio.get_running_loop().call_soon(self._release_soon)

    def _release_soon(self) -> None:
        entries, self._releases = self._releases, []
        if entries:
            task = asyncio.ensure_future(self._release_now(entries))
            self._flush_tasks.add(task)
            task.add_done_callback(self._flush_tasks.discard)

    @staticmethod
    async def _release_now(entries: list[tuple[str, str]]) -> None:
        try:
            await get_state().release_many(entries)
        except Exception as exc:  # the entries fade after INFLIGHT_WINDOW anyway
            logger.warning("proxy: could not release %d in-flight entries: %r", len(entries), exc)

    async def _admit(self, adm: Admission, ctx: _Ctx) -> dict | None:
        """Rate limit, requests in flight, then one token = one device. Returns the device's
        active session record (None when no session is active), raises 429/409 otherwise. Claims
        nothing: only a request the upstream answered claims the device (`_claim`)."""
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
        cap = settings.PROXY_MAX_CONCURRENT_PER_TOKEN
        if cap and adm.member is not None and adm.inflight > cap:
            _proxy_hits.inc()
            raise ProxyError(
                429,
                "too_many_concurrent",
                f"At most {cap} requests at a time per access token.",
                [(b"retry-after", b"1")],
            )
        idle = settings.SESSION_IDLE_MINUTES * 60
        record = adm.record
        if record and now - record["ts"] < idle:
            if record["dev"] == adm.device:
                return record
            await self._conflict(adm, record, ctx, idle, now)
        return None

    async def _claim(self, adm: Admission, ctx: _Ctx) -> dict:
        """The upstream answered: claim the device (start or take over the session)."""
        idle = settings.SESSION_IDLE_MINUTES * 60
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
        record = await self._admit(adm, ctx)
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

    async def _browser_session(self, scope, send, adm: Admission, ctx: _Ctx) -> int:
        """A one-time link into the proxy origin, bound to the token's digest and the device."""
        origin = settings.PROXY_ORIGIN
        if not origin:
            raise ProxyError(
                404, "browser_mode_disabled", "Browser mode is not configured here (PROXY_ORIGIN)."
            )
        await self._admit(adm, ctx)  # rate limit and device conflict
        nxt = _next_from_query(scope.get("query_string") or b"")
        code = secrets.token_urlsafe(32)
        ttl = max(1, settings.PROXY_ENTRY_TTL)
        await get_kv().aset(f"pxenter:{code}", {"d": adm.digest, "dev": adm.device}, ttl)
        url = origin.rstrip("/") + ENTER_PREFIX + code
        if nxt != "/":
            url += "?next=" + quote(nxt, safe="/")
        return await _send_json(send, 200, {"url": url, "expires_in": ttl})

    async def _enter(self, scope, send, ctx: _Ctx, code: str) -> int:
        """GET PROXY_ORIGIN/__zenzefi/enter/<code>: redeem the one-time code (single use), set the
        httponly cookie host-only on the proxy origin and redirect into the upstream."""
        nxt = _next_from_query(scope.get("query_string") or b"")
        entry = await get_state().take(f"pxenter:{code}") if 0 < len(code) <= 128 else None
        if not entry:
            raise ProxyError(
                401, "entry_invalid", "This link is unknown, used or expired; start browser mode again."
            )
        adm = await self._admission(entry["d"], entry["dev"], member=False)
        await self._admit(adm, ctx)  # rate limit and device conflict
        check = adm.check
        left = (
            check.expires_at.timestamp() - time.time()
            if check.expires_at
            else (check.duration_hours or 1) * 3600
        )
        ttl = max(1, int(min(settings.PROXY_SESSION_COOKIE_MAX_AGE, left)))
        sid = secrets.token_urlsafe(32)
        await get_kv().aset(f"pxck:{sid}", {"d": adm.digest, "dev": adm.device}, ttl)
        cookie = (
            f"{settings.PROXY_SESSION_COOKIE}={sid}; Path=/; Max-Age={ttl}; HttpOnly; "
            f"SameSite={settings.COOKIE_SAMESITE}"
        )
        if settings.COOKIE_SECURE:
            cookie += "; Secure"
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [
                    (b"location", nxt.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return 302

    # --- forwarding ----------------------------------------------------------------------
    def _upstream_headers(self, scope, host: bytes | None) -> list[tuple[str, str]]:
        ours = {
            settings.PROXY_SESSION_COOKIE,
            settings.SESSION_COOKIE_NAME,
            settings.CSRF_COOKIE_NAME,
            settings.LANGUAGE_COOKIE_NAME,
        }
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
        limit = settings.PROXY_BODY_TIMEOUT
        while more:
            if limit > 0:
                try:
                    async with asyncio.timeout(limit):
                        message = await receive()
                except TimeoutError:
                    ctx.body_timeout = True
                    raise BodyTimeout() from None
            else:
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
        self, scope, receive, send, method: str, adm: Admission, ctx: _Ctx, has_body: bool, browser: bool
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
        record = await self._admit(adm, ctx)
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

        if browser:
            rw = rewriter(settings.ZENZEFI_TARGET_URL, settings.PROXY_ORIGIN, "")
        else:
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
                record = await self._claim(adm, ctx)
            if check.activated_at is None and check.token_id not in self._activated:
                try:
                    await _db(services.token_activate_for_proxy)(
                        token_id=check.token_id, ip=ctx.ip, user_agent=ctx.user_agent
                    )
                    self._activated.add(check.token_id)
                except Exception:  # the customer still gets the answer; the next request retries
                    logger.exception("proxy: could not activate token %s", check.token_id)
            return await self._respond(resp, send, receive, method, rw, ctx, adm, record, browser)
        finally:
            resp.close()  # no-op once the body was read and the connection released to the pool
            if record is not None:
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
            except (ClientGone, BodyTimeout):
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
                if ctx.body_timeout:
                    raise BodyTimeout() from None
                self.breaker.failure(time.monotonic(), threshold)
                raise ProxyError(502, "upstream_unavailable", "The Zenzefi host failed to answer.") from None
            self.breaker.success()
            return resp
        raise AssertionError("unreachable")

    async def _respond(
        self, resp, send, receive, method, rw, ctx: _Ctx, adm: Admission, record, browser: bool
    ) -> int:
        status = resp.status
        raw = resp.raw_headers
        connection_listed: set[bytes] = set()
        for name, value in raw:
            if name.lower() == b"connection":
                connection_listed.update(t.strip().lower() for t in value.split(b","))
        headers = []
        ctype = cenc = None
        ours = settings.PROXY_SESSION_COOKIE.encode() + b"="
        for name, value in raw:
            name = name.lower()
            if name in RESPONSE_DROP or name.startswith(b"proxy-") or name in connection_listed:
                continue
            if name == b"location":
                value = rw.location(value.decode("latin-1")).encode("latin-1")
            elif name == b"set-cookie":
                if browser and value.lstrip().startswith(ours):
                    continue  # the upstream never replaces the proxy origin's session cookie
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
