"""Pagination by `skip` (offset) and `limit`, strict about bad values (400, not a silent default)."""

from __future__ import annotations

import re

from django.conf import settings
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from zenzefi.errors import InvalidInput

INTEGER_RE = re.compile(r"-?\d{1,19}")
# A deeper offset than any list here will reach (and below the database's bigint).
MAX_SKIP = 1_000_000_000


def parse_skip_limit(query_params) -> tuple[int, int]:
    """Read `skip` and `limit` from query parameters; 400 for anything but sane integers."""
    max_limit = settings.PAGINATION_MAX_LIMIT
    default_limit = settings.REST_FRAMEWORK["PAGE_SIZE"]
    values = {}
    for name, default, low, high in (("skip", 0, 0, MAX_SKIP), ("limit", default_limit, 1, max_limit)):
        raw = query_params.get(name)
        if raw is None:
            values[name] = default
            continue
        try:
            # Digits only (an optional sign): "", " 5", "5.0" and "1_000" are 400s, not defaults.
            if not INTEGER_RE.fullmatch(raw):
                raise ValueError(raw)
            value = int(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name}: must be an integer.", code="invalid_pagination") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise InvalidInput(f"{name}: must be {bound}.", code="invalid_pagination")
        values[name] = value
    return values["skip"], values["limit"]


class SkipLimitPagination(BasePagination):
    """Answers `{"count", "skip", "limit", "results"}`."""

    def paginate_queryset(self, queryset, request, view=None):
        self.skip, self.limit = parse_skip_limit(request.query_params)
        self.count = queryset.count() if hasattr(queryset, "count") else len(queryset)
        return list(queryset[self.skip : self.skip + self.limit])

    def get_paginated_response(self, data):
        return Response({"count": self.count, "skip": self.skip, "limit": self.limit, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["count", "skip", "limit", "results"],
            "properties": {
                "count": {"type": "integer"},
                "skip": {"type": "integer"},
                "limit": {"type": "integer"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        limit = {"type": "integer", "minimum": 1, "maximum": settings.PAGINATION_MAX_LIMIT}
        limit["default"] = settings.REST_FRAMEWORK["PAGE_SIZE"]
        return [
            {
                "name": "skip",
                "required": False,
                "in": "query",
                "description": "How many items to skip (offset).",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP, "default": 0},
            },
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": "How many items to return.",
                "schema": limit,
            },
        ]
