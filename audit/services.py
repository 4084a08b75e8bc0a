"""The one way to write an audit entry. Call it inside the transaction of the change it records."""

from __future__ import annotations

import ipaddress
from typing import Any

from audit.models import AuditLog
from zenzefi.request_id import current_request_id

# Keys whose values must never reach the audit trail, however a caller builds `details`.
_SECRET_KEYS = {"password", "token", "secret", "access", "refresh", "authorization"}


def _clean(details: dict[str, Any] | None) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if key.lower() in _SECRET_KEYS:
            continue
        cleaned[key] = (
            value if isinstance(value, int | float | bool | type(None) | list | dict) else str(value)
        )
    return cleaned


def _with_request_id(details: dict[str, Any]) -> dict[str, Any]:
    """The id of the request being handled (zenzefi.request_id), so an entry leads to its log lines."""
    request_id = current_request_id()
    if request_id:
        details.setdefault("request_id", request_id)
    return details


def client_ip(request) -> str | None:
    """The client address as the ASGI/WSGI server set it (never X-Forwarded-For; see README)."""
    if request is None:
        return None
    ip = request.META.get("REMOTE_ADDR") or None
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def audit_record(
    *,
    action: str,
    actor=None,
    resource_type: str = "",
    resource_id: Any = "",
    details: dict[str, Any] | None = None,
    request=None,
    suspicious: bool = False,
) -> AuditLog:
    if actor is not None and not getattr(actor, "pk", None):
        actor = None
    return AuditLog.objects.create(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id or ""),
        details=_with_request_id(_clean(details)),
        ip=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "")[:512] if request is not None else ""),
        suspicious=suspicious,
    )


def audit_retention_purge(*, older_than_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete audit entries older than AUDIT_RETENTION_DAYS, in batches (short locks).
    Idempotent: a second run finds nothing to delete. Returns how many were deleted."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    days = settings.AUDIT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        # No ordering (the model's default would sort every old row): any batch of old rows will do.
        old = AuditLog.objects.filter(created_at__lt=cutoff).order_by()
        ids = list(old.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += AuditLog.objects.filter(pk__in=ids).delete()[0]
