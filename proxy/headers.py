"""Header rules both ways (SPEC §8, docs/proxy.md "Headers").

Towards the upstream: hop-by-hop headers (and the names `Connection` lists), the incoming `Host`,
our credentials (token, device, `Authorization`, the platform's and the proxy's cookies), the
client's own forwarding headers and override headers (`X-Original-URL` and kin) are dropped;
`X-Forwarded-For/-Proto/-Host` and the request id are set; `Accept-Encoding` is narrowed to what the
rewriter can decode. Towards the client: hop-by-hop, `Server` and `Date` (the ASGI server sets its
own) are dropped, `Location` and `Set-Cookie` are rewritten, and a text body to rewrite loses its
length, validators and decoded encoding.
"""

from __future__ import annotations

from django.conf import settings

from proxy.rewrite import DECODABLE, REWRITE_TYPES, BodyRewriter, Rewrite
from zenzefi.request_id import current_request_id

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
ACCEPTED_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "identity"})
_REWRITE_DROP = frozenset({b"content-length", b"etag", b"content-md5"})


def accept_encoding(value: str) -> str:
    """Only codings the rewriter can decode (gzip, deflate): a text body can always be rewritten."""
    keep = [
        item.strip() for item in value.split(",") if item.split(";")[0].strip().lower() in ACCEPTED_CODINGS
    ]
    return ", ".join(keep) or "identity"


def _connection_listed(headers, lower: bool) -> set[bytes]:
    listed: set[bytes] = set()
    for name, value in headers:
        if (name.lower() if lower else name) == b"connection":
            listed.update(t.strip().lower() for t in value.split(b","))
    return listed


def upstream_headers(scope, host: bytes | None) -> list[tuple[str, str]]:
    """The request headers to send upstream (ASGI header names are lower-case already)."""
    ours = {
        settings.PROXY_SESSION_COOKIE,
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
        settings.LANGUAGE_COOKIE_NAME,
    }
    connection_listed = _connection_listed(scope["headers"], lower=False)
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
            text = accept_encoding(text)
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


def client_headers(
    raw, rw: Rewrite, *, method: str, status: int, browser: bool
) -> tuple[list[tuple[bytes, bytes]], BodyRewriter | None]:
    """The upstream's response headers for the client, and the body rewriter when the body is a
    text type to rewrite (HTML/CSS/JavaScript, identity or gzip/deflate: decoded first)."""
    connection_listed = _connection_listed(raw, lower=True)
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
                drop = (_REWRITE_DROP | {b"content-encoding"}) if encoding in DECODABLE else _REWRITE_DROP
                headers = [h for h in headers if h[0] not in drop]
    return headers, body_rewriter
