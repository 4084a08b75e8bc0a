"""Browser mode: the proxy origin (`PROXY_ORIGIN`, docs/proxy-origin.md), its one-time entry link
and its cookie sessions.

`POST /api/v1/proxy/session` (desktop credentials) stores a random one-time code bound to the
token's digest and the device and answers the link `PROXY_ORIGIN/__zenzefi/enter/<code>`. Opening
it takes the code (once), sets the httponly cookie host-only on the proxy origin (a random session
id mapped in the kv to the digest and device, never the token) and redirects into the upstream.
On the proxy origin every path is the upstream's except the reserved `/__zenzefi/`.
"""

from __future__ import annotations

import re
import secrets
from functools import cache
from urllib.parse import quote, unquote_to_bytes, urlsplit

from django.conf import settings

from proxy.admission import Admission, Gate
from proxy.clock import clock
from proxy.request import Ctx
from proxy.responses import ProxyError, send_json
from proxy.state import get_state
from tokens.validation import UNKNOWN
from zenzefi.kv import get_kv
from zenzefi.kvkeys import proxy_cookie_key, proxy_entry_key

RESERVED_PREFIX = "/__zenzefi/"  # on the proxy origin: ours, never forwarded
ENTER_PREFIX = RESERVED_PREFIX + "enter/"
NEXT_RE = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")  # root-relative, printable, no backslash


@cache
def origin_hosts(origin: str) -> frozenset[bytes]:
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
    hosts = origin_hosts(settings.PROXY_ORIGIN)
    if hosts:
        for name, value in scope["headers"]:
            if name == b"host":
                return value.lower() in hosts
    return False


def next_from_query(query: bytes) -> str:
    """The validated `next` (a root-relative upstream path) from a query string; "/" without one."""
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == b"next" and value:
            nxt = unquote_to_bytes(value.replace(b"+", b" ")).decode("latin-1")
            if not NEXT_RE.fullmatch(nxt) or nxt.startswith(RESERVED_PREFIX):
                raise ProxyError(400, "invalid_next", "`next` must be a path on the upstream, such as /x.")
            return nxt
    return "/"


async def authenticate_cookie(gate: Gate, sid: str | None, *, member: bool = False) -> Admission:
    """A request on the proxy origin: its cookie session's token and device (401 without one)."""
    if not sid:
        raise ProxyError(
            401, UNKNOWN, "No browser-mode session: open the link from POST /api/v1/proxy/session."
        )
    mapping = await get_kv().aget(proxy_cookie_key(sid)) if len(sid) <= 128 else None
    if not mapping:
        raise ProxyError(401, UNKNOWN, "Unknown or expired proxy session; start a new one.")
    return await gate.admission(mapping["d"], mapping["dev"], member)


async def entry_link(gate: Gate, scope, send, adm: Admission, ctx: Ctx) -> int:
    """POST /api/v1/proxy/session: a one-time link into the proxy origin, bound to the token's
    digest and the device."""
    origin = settings.PROXY_ORIGIN
    if not origin:
        raise ProxyError(404, "browser_mode_disabled", "Browser mode is not configured here (PROXY_ORIGIN).")
    await gate.admit(adm, ctx)  # rate limit and device conflict
    nxt = next_from_query(scope.get("query_string") or b"")
    code = secrets.token_urlsafe(32)
    ttl = max(1, settings.PROXY_ENTRY_TTL)
    await get_kv().aset(proxy_entry_key(code), {"d": adm.digest, "dev": adm.device}, ttl)
    url = origin.rstrip("/") + ENTER_PREFIX + code
    if nxt != "/":
        url += "?next=" + quote(nxt, safe="/")
    return await send_json(send, 200, {"url": url, "expires_in": ttl})


async def enter(gate: Gate, scope, send, ctx: Ctx, code: str) -> int:
    """GET PROXY_ORIGIN/__zenzefi/enter/<code>: redeem the one-time code (single use), set the
    httponly cookie host-only on the proxy origin and redirect into the upstream."""
    nxt = next_from_query(scope.get("query_string") or b"")
    entry = await get_state().take(proxy_entry_key(code)) if 0 < len(code) <= 128 else None
    if not entry:
        raise ProxyError(
            401, "entry_invalid", "This link is unknown, used or expired; start browser mode again."
        )
    adm = await gate.admission(entry["d"], entry["dev"], member=False)
    await gate.admit(adm, ctx)  # rate limit and device conflict
    check = adm.check
    if check.expires_at:
        left = check.expires_at.timestamp() - clock.time()
    else:
        left = (check.duration_hours or 1) * 3600
    ttl = max(1, int(min(settings.PROXY_SESSION_COOKIE_MAX_AGE, left)))
    sid = secrets.token_urlsafe(32)
    await get_kv().aset(proxy_cookie_key(sid), {"d": adm.digest, "dev": adm.device}, ttl)
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
