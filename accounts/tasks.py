"""Accounts jobs (entry points only)."""

from celery import shared_task

from accounts.services import jwt_flush_expired
from idempotency.services import idempotency_purge


@shared_task(name="accounts.tasks.flush_expired_jwts", ignore_result=True)
def flush_expired_jwts() -> int:
    """The daily "expired JWT records" job: expired refresh-token records, and idempotency records
    older than IDEMPOTENCY_KEY_TTL_HOURS (they replay nothing any more). Returns how many rows
    were deleted."""
    return jwt_flush_expired() + idempotency_purge()
