"""The one way to write an audit entry. Call it inside the transaction of the change it records."""

from __future__ import annotations

import ipaddress
from typing import Any

from audit.models import AuditLog

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
        details=_clean(details),
        ip=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "")[:512] if request is not None else ""),
        suspicious=suspicious,
    )
