from celery import shared_task

from webhooks import services


@shared_task(bind=True, name="webhooks.tasks.deliver_webhook", ignore_result=True, acks_late=True)
def deliver_webhook(self, delivery_id: int, attempts: int | None = None) -> str:
    """A trigger: attempt this delivery now. No Celery retry: attempts, backoff and the final
    failure live on the row (`zenzefi.outbox`); a failed attempt queues the next trigger itself,
    naming the attempts made so far (`attempts`), so a stale trigger does nothing."""
    # The same message redelivered (its worker was killed) has the same id and takes its own
    # lease over at once; any other message for the delivery waits for the lease.
    claim_key = f"{self.request.id}:{self.request.retries}" if self.request.id else ""
    return services.webhook_delivery_attempt(
        delivery_id=delivery_id, claim_key=claim_key, attempts=attempts
    ).status


@shared_task(name="webhooks.tasks.requeue_overdue_deliveries", ignore_result=True)
def requeue_overdue_deliveries() -> int:
    """The sweeper (beat): attempts the deliveries whose trigger was lost."""
    return len(services.webhook_deliveries_requeue_overdue())
