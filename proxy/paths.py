"""Which upstream path a request means, and whether the token's scope reaches it.

Paths are read the way Java servers (Tomcat, Spring) read them, so nothing that climbs out of the
path or past the scope check can be smuggled in (docs/security.md).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from proxy.rewrite import PROXY_PREFIX
from tokens.models import Scope

PREFIX = PROXY_PREFIX + "/"
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
