"""Query-parameter parsing shared by the API views: strict, a clear 400 for anything odd."""

from __future__ import annotations

from zenzefi.errors import InvalidInput


def parse_optional_bool(raw: str | None, name: str) -> bool | None:
    """`true`/`false` (as the OpenAPI schema states); absent is None; anything else, empty
    included, is a 400."""
    if raw is None:
        return None
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise InvalidInput(f"{name}: must be true or false.", code="invalid_boolean")


def parse_bool(raw: str | None, name: str) -> bool:
    """Like `parse_optional_bool`, with absent meaning false."""
    return bool(parse_optional_bool(raw, name))
