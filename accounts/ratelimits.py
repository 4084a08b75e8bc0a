"""Per-client-IP limits for the auth views (django-ratelimit counters in the shared cache).

The client IP is REMOTE_ADDR as the server set it: uvicorn rewrites it from
X-Forwarded-For only for trusted proxies (FORWARDED_ALLOW_IPS); this code never reads
X-Forwarded-For itself.
"""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage

from audit.services import audit_record, request_origin
from zenzefi.errors import RateLimited
from zenzefi.metrics import rate_limit_hits_total


def _usage(request, group: str, *, increment: bool) -> dict | None:
    return get_usage(request, group=group, key="ip", rate=settings.AUTH_RATE_LIMIT, increment=increment)


def _refuse(request, group: str, usage: dict) -> RateLimited:
    rate_limit_hits_total.labels(scope="auth").inc()
    audit_record(
        action="rate_limit.hit",
        resource_type="endpoint",
        resource_id=group,
        details={"scope": "auth", "limit": settings.AUTH_RATE_LIMIT, "count": usage["count"]},
        **request_origin(request),
        suspicious=True,
    )
    return RateLimited(
        "Too many attempts from this address. Try again later.", retry_after=usage["time_left"]
    )


def ip_limit_count_attempt(request, group: str) -> None:
    """Count this attempt; refuse it (429) once the limit is passed."""
    usage = _usage(request, group, increment=True)
    if usage and usage["should_limit"]:
        raise _refuse(request, group, usage)


def ip_limit_check(request, group: str) -> None:
    """Refuse (429) if earlier failures already used up the limit; counts nothing."""
    usage = _usage(request, group, increment=False)
    if usage and usage["count"] >= usage["limit"]:
        raise _refuse(request, group, usage)


def ip_limit_count_failure(request, group: str) -> None:
    """Count a failed attempt (a success counts nothing, so it never locks anyone out)."""
    _usage(request, group, increment=True)
