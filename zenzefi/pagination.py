"""Pagination by `skip` (offset) and `limit`, strict about bad values (400, not a silent default)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from zenzefi.errors import InvalidInput


def parse_skip_limit(query_params) -> tuple[int, int]:
    """Read `skip` and `limit` from query parameters; 400 for anything but sane integers."""
    max_limit = settings.PAGINATION_MAX_LIMIT
    default_limit = settings.REST_FRAMEWORK["PAGE_SIZE"]
    values = {}
    for name, default, low, high in (("skip", 0, 0, None), ("limit", default_limit, 1, max_limit)):
        raw = query_params.get(name)
        if raw in (None, ""):
            values[name] = default
            continue
        try:
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
        return [
            {"name": "skip", "required": False, "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "required": False, "in": "query", "schema": {"type": "integer", "minimum": 1}},
        ]
