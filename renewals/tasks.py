"""The auto-renewal job (an entry point only; the rules live in renewals.services)."""

from celery import shared_task

from renewals.services import tokens_renew_due


@shared_task(name="renewals.tasks.renew_expiring_tokens", ignore_result=True)
def renew_expiring_tokens() -> int:
    """Renew tokens with auto_renew that expire within the hour, when the balance allows."""
    return len(tokens_renew_due().renewed)
