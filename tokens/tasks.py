"""Token jobs (entry points only; the rules live in tokens.services)."""

from celery import shared_task

from tokens.services import tokens_expire_due


@shared_task(name="tokens.tasks.expire_tokens", ignore_result=True)
def expire_tokens() -> int:
    """Mark tokens whose time ran out, drop their cache entries, fire `token.expired`."""
    return len(tokens_expire_due())
