"""The one way to write an audit entry. Call it inside the transaction of the change it records."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, TypedDict

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


def _ip(value: str | None) -> str | None:
    """A valid IPv4/IPv6 address in its canonical form, or None for anything else."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client address as the ASGI/WSGI server set it (never X-Forwarded-For; see README)."""
    if request is None:
        return None
    return _ip(request.META.get("REMOTE_ADDR"))


class Origin(TypedDict):
    ip: str | None
    user_agent: str


def request_origin(request) -> Origin:
    """Where a Django/DRF request came from, as `audit_record` takes it:
    `audit_record(..., **request_origin(request))`. No request (a task, a command): nothing."""
    if request is None:
        return Origin(ip=None, user_agent="")
    return Origin(ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""))


def _actor_id(actor) -> int | None:
    """A saved user or a user id; None (no actor) for nothing, an anonymous or an unsaved user."""
    if actor is None or isinstance(actor, bool):
        return None
    pk = actor if isinstance(actor, int) else getattr(actor, "pk", None)
    return pk if isinstance(pk, int) and not isinstance(pk, bool) and pk > 0 else None


def _entry(
    *,
    action: str,
    actor: Any = None,
    resource_type: str = "",
    resource_id: Any = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str | None = "",
    suspicious: bool = False,
) -> AuditLog:
    return AuditLog(
        actor_id=_actor_id(actor),
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id or ""),
        details=_with_request_id(_clean(details)),
        ip=_ip(ip),
        user_agent=str(user_agent or "")[:512],
        suspicious=suspicious,
    )


def audit_record(
    *,
    action: str,
    actor: Any = None,
    resource_type: str = "",
    resource_id: Any = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str | None = "",
    suspicious: bool = False,
) -> AuditLog:
    """Write one entry. `actor`: a user or a user id (None: the system); `ip` is kept only if it
    is a valid address (else None); `user_agent` is cut to the column's 512 characters. Views
    pass `**request_origin(request)`; the proxy and tasks pass what they have."""
    entry = _entry(
        action=action,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
        ip=ip,
        user_agent=user_agent,
        suspicious=suspicious,
    )
    entry.save(force_insert=True)
    return entry


def audit_record_many(entries: Iterable[dict[str, Any]]) -> list[AuditLog]:
    """Write many entries in one bulk insert: each item holds `audit_record`'s keyword arguments
    and is normalised the same way (secret keys dropped, the request id, ip, user agent)."""
    rows = [_entry(**entry) for entry in entries]
    return AuditLog.objects.bulk_create(rows) if rows else []


def audit_retention_purge(*, older_than_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete audit entries older than AUDIT_RETENTION_DAYS, in batches (short locks).
    Idempotent: a second run finds nothing to delete. Returns how many were deleted.

    One statement per batch, `DELETE … WHERE id IN (SELECT id … WHERE created_at < cutoff LIMIT
    n)` (an index range of `created_at`; the ids never travel to Python), each committed on its
    own; a run with nothing to delete is that one statement deleting nothing."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    days = settings.AUDIT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(days=days))
    table = AuditLog._meta.db_table
    # No ordering (the model's default would sort every old row): any batch of old rows will do.
    sql = (
        f"DELETE FROM {table} WHERE id IN "  # noqa: S608 - the table name is ours
        f"(SELECT id FROM {table} WHERE created_at < %s LIMIT %s)"
    )
    deleted = 0
    while True:
        with connection.cursor() as cursor:  # autocommit: each batch is its own transaction
            cursor.execute(sql, [cutoff, batch_size])
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted
