"""Query-parameter parsing shared by the API views: strict, a clear 400 for anything odd."""

from __future__ import annotations

from zenzefi.errors import InvalidInput

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def parse_optional_bool(raw: str | None, name: str) -> bool | None:
    """`true`/`false` (also 1/0, yes/no); absent or empty is None; anything else a 400."""
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"{name}: must be true or false.", code="invalid_boolean")


def parse_bool(raw: str | None, name: str) -> bool:
    """Like `parse_optional_bool`, with absent meaning false."""
    return bool(parse_optional_bool(raw, name))
