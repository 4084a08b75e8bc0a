"""Notification jobs and the email trigger tasks (entry points only; rules live in services)."""

from celery import shared_task

from notifications import services


def _claim_key(request) -> str:
    # The same message redelivered (its worker was killed) takes its own lease over at once.
    return f"{request.id}:{request.retries}" if request.id else ""


@shared_task(
    bind=True, name="notifications.tasks.send_notification_email", ignore_result=True, acks_late=True
)
def send_notification_email(self, notification_id: int, attempts: int | None = None) -> str:
    """A trigger: send this email now. No Celery retry: attempts, backoff and the final failure
    live on the row (`zenzefi.outbox`); a failed send queues the next trigger itself, naming the
    attempts made so far (`attempts`), so a stale trigger does nothing."""
    return services.notification_email_deliver(
        notification_id=notification_id, claim_key=_claim_key(self.request), attempts=attempts
    )


@shared_task(
    bind=True, name="notifications.tasks.send_notification_emails", ignore_result=True, acks_late=True
)
def send_notification_emails(self, notification_ids: list[int]) -> int:
    """A job's chunk of emails in one message: one claim, each sent once; one that fails is
    retried by its own trigger, with the same backoff."""
    return services.notification_emails_deliver(
        notification_ids=notification_ids, claim_key=_claim_key(self.request)
    )


@shared_task(name="notifications.tasks.notify_expiring_tokens", ignore_result=True)
def notify_expiring_tokens() -> int:
    return len(services.notify_expiring_tokens())


@shared_task(name="notifications.tasks.notify_low_balance", ignore_result=True)
def notify_low_balance() -> int:
    return len(services.notify_low_balance())


@shared_task(name="notifications.tasks.requeue_stuck_emails", ignore_result=True)
def requeue_stuck_emails() -> int:
    """The sweeper (beat): sends the emails whose trigger was lost."""
    return len(services.notification_emails_requeue_stuck())
