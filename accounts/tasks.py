"""Accounts jobs (entry points only)."""

from celery import shared_task

from accounts.services import jwt_flush_expired


@shared_task(name="accounts.tasks.flush_expired_jwts", ignore_result=True)
def flush_expired_jwts() -> int:
    return jwt_flush_expired()
