from celery import shared_task
from django.conf import settings

from webhooks import services


@shared_task(bind=True, name="webhooks.tasks.deliver_webhook", ignore_result=True, acks_late=True)
def deliver_webhook(self, delivery_id: int) -> str:
    """One attempt; on failure Celery retries with the service's backoff (exponential + jitter).
    The number of attempts is bounded by WEBHOOK_MAX_ATTEMPTS, counted on the delivery row."""
    # The same message redelivered (its worker was killed) has the same id and retry count and
    # takes its own lease over at once; any other message for the delivery waits for the lease.
    claim_key = f"{self.request.id}:{self.request.retries}" if self.request.id else ""
    outcome = services.webhook_delivery_attempt(delivery_id=delivery_id, claim_key=claim_key)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=settings.WEBHOOK_MAX_ATTEMPTS)
    return outcome.status


@shared_task(name="webhooks.tasks.requeue_overdue_deliveries", ignore_result=True)
def requeue_overdue_deliveries() -> int:
    return len(services.webhook_deliveries_requeue_overdue())
