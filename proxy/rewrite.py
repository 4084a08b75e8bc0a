"""Rewriting upstream URLs into proxy URLs: `Location`, `Set-Cookie` and text bodies.

An absolute upstream URL (`ZENZEFI_TARGET_URL` + path, also protocol-relative or with JSON-escaped
slashes) becomes `BACKEND_URL` + `/api/v1/proxy` + path on the platform's origin (the desktop
client), or `PROXY_ORIGIN` + path in browser mode (there every path is the upstream's own path, so
root-relative URLs need no rewriting), so a browser stays inside the proxy.
Bodies are rewritten as they stream: `BodyRewriter` keeps a carry-over window of the longest
possible match, so a URL split across two chunks is still found.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

PROXY_PREFIX = "/api/v1/proxy"
REWRITE_TYPES = frozenset(
    {
        b"text/html",
        b"application/xhtml+xml",
        b"text/css",
        b"text/javascript",
        b"application/javascript",
        b"application/x-javascript",
        b"application/ecmascript",
    }
)
DECODABLE = frozenset({b"gzip", b"x-gzip", b"deflate"})


@dataclass(frozen=True)
class Rewrite:
    target_base: str  # e.g. "http://127.0.0.1:9000" (+ a base path, no trailing slash)
    target_netlocs: tuple[str, ...]  # "host:port" and, for a default port, "host"
    target_scheme: str
    target_path: str  # base path of the upstream ("" or "/base")
    proxy_base: str  # BACKEND_URL + "/api/v1/proxy", or PROXY_ORIGIN (browser mode)
    local_prefix: str  # "/api/v1/proxy", or "" on the proxy origin
    body_re: re.Pattern
    window: int

    # --- headers
    def location(self, value: str) -> str:
        lower = value.lower()
        for netloc in self.target_netlocs:
            for head in (f"{self.target_scheme}://{netloc}", f"//{netloc}"):
                if lower.startswith(head.lower()):
                    rest = value[len(head) :]
                    if rest and rest[0] not in "/?#":
                        continue  # another host or port that merely starts the same way
                    return self.proxy_base + self._strip_base(rest or "/")
        if value.startswith("/") and not value.startswith("//"):
            # Root-relative: absolute on the platform's origin, unchanged (but for an upstream base
            # path) on the proxy origin, where every path is the upstream's own.
            return (self.proxy_base if self.local_prefix else "") + self._strip_base(value)
        return value

    def _strip_base(self, path: str) -> str:
        base = self.target_path
        if base and (path == base or path.startswith(base + "/") or path.startswith(base + "?")):
            path = path[len(base) :] or "/"
        return path

    def set_cookie(self, value: bytes) -> bytes:
        """Drop `Domain` (the cookie then belongs to the serving host only) and, on the platform's
        origin, move `Path` under the proxy prefix, so an upstream cookie never lands on (or
        clobbers) the platform's own paths."""
        parts = value.split(b";")
        out = [parts[0]]
        for attr in parts[1:]:
            name = attr.split(b"=", 1)[0].strip().lower()
            if name == b"domain":
                continue
            if name == b"path":
                path = attr.split(b"=", 1)[1].strip().decode("latin-1") if b"=" in attr else "/"
                path = self._strip_base(path if path.startswith("/") else "/")
                attr = b" Path=" + (self.local_prefix + path).encode("latin-1")
            out.append(attr)
        return b";".join(out)

    # --- bodies
    def replacement(self, match: re.Match) -> bytes:
        text = match.group(0)
        if b"\\/" in text:
            return self.proxy_base.replace("/", "\\/").encode()
        return self.proxy_base.encode()


@cache
def rewriter(target_url: str, backend_url: str, prefix: str = PROXY_PREFIX) -> Rewrite:
    """`backend_url` + `prefix` replaces the upstream's base: BACKEND_URL and /api/v1/proxy for the
    desktop client, PROXY_ORIGIN and "" for browser mode."""
    parts = urlsplit(target_url)
    scheme = parts.scheme.lower() or "http"
    host = (parts.hostname or "").lower()
    if parts.hostname and ":" in parts.hostname:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    # The longest form first: "host:443" and "host" are the same origin for https.
    netlocs = [f"{host}:{port or default}"] if (port or default) else []
    if port is None or port == default:
        netlocs.append(host)
    base = parts.path.rstrip("/")
    alternatives = []
    for netloc in netlocs:
        n = re.escape(netloc.encode())
        b = re.escape(base.encode())
        b_esc = re.escape(base.replace("/", "\\/").encode())
        alternatives.append(b"(?:" + re.escape(scheme.encode()) + b":)?//" + n + b)
        alternatives.append(re.escape(scheme.encode()) + rb":\\/\\/" + n + b_esc)
    # Not preceded by a scheme character, ":" or "/" (so "https://host" is not half-matched as
    # "//host"), not followed by more host name or another port.
    body_re = re.compile(
        rb"(?<![\w:/\\.+\-])(?:" + b"|".join(alternatives) + rb")(?![\w.\-]|:\d)", re.IGNORECASE
    )
    longest = max(len(scheme) + 5 + len(n) + 2 * len(base) for n in netlocs)
    return Rewrite(
        target_base=f"{scheme}://{host}{f':{port}' if port else ''}{base}",
        target_netlocs=tuple(netlocs),
        target_scheme=scheme,
        target_path=base,
        proxy_base=backend_url.rstrip("/") + prefix,
        local_prefix=prefix,
        body_re=body_re,
        window=longest + 8,
    )


class BodyRewriter:
    """Streaming search-and-replace with a carry-over window. Optionally decodes gzip/deflate first
    (the caller then drops Content-Encoding)."""

    def __init__(self, rw: Rewrite, encoding: bytes | None = None):
        self._re = rw.body_re
        self._repl = rw.replacement
        self._window = rw.window
        self._carry = b""
        self._ctx = b""
        self._decoder = None
        self._deflate = False
        if encoding in (b"gzip", b"x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS)
            self._deflate = True

    def _decode(self, chunk: bytes) -> bytes:
        try:
            return self._decoder.decompress(chunk)
        except zlib.error:
            if not self._deflate:
                raise
            # Some servers send raw deflate without the zlib header.
            self._deflate = False
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._decoder.decompress(chunk)

    def feed(self, chunk: bytes) -> bytes:
        if self._decoder is not None:
            chunk = self._decode(chunk)
        # buf[0] is the last byte already sent (context for the look-behind), never sent again.
        buf = self._ctx + self._carry + chunk
        start = len(self._ctx)
        limit = len(buf) - self._window
        if limit <= start:
            self._carry = buf[start:]
            return b""
        out = []
        pos = start
        for match in self._re.finditer(buf, start):
            if match.start() >= limit:
                break
            out.append(buf[pos : match.start()])
            out.append(self._repl(match))
            pos = match.end()
        boundary = max(pos, limit)
        out.append(buf[pos:boundary])
        self._carry = buf[boundary:]
        self._ctx = buf[boundary - 1 : boundary]
        return b"".join(out)

    def flush(self) -> bytes:
        tail = self._carry
        if self._decoder is not None:
            tail += self._decoder.flush()
        buf = self._ctx + tail
        start = len(self._ctx)
        self._carry = b""
        out = []
        pos = start
        for match in self._re.finditer(buf, start):
            out.append(buf[pos : match.start()])
            out.append(self._repl(match))
            pos = match.end()
        out.append(buf[pos:])
        return b"".join(out)
