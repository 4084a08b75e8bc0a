"""Notification jobs and the email sender task (entry points only; rules live in services)."""

import secrets

from celery import shared_task

from notifications import services


@shared_task(
    bind=True,
    name="notifications.tasks.send_notification_email",
    ignore_result=True,
    max_retries=5,
    acks_late=True,
)
def send_notification_email(self, notification_id: int) -> str:
    final = self.request.retries >= self.max_retries
    try:
        return services.notification_email_deliver(notification_id=notification_id, final_attempt=final)
    except services.EmailRetry as exc:
        # Exponential backoff (60 s, 120 s, 240 s, …) with up to 30 s of jitter.
        countdown = 60 * 2**self.request.retries + secrets.randbelow(30)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="notifications.tasks.send_notification_emails", ignore_result=True, acks_late=True)
def send_notification_emails(notification_ids: list[int]) -> int:
    """A job's chunk of emails in one message: each is sent once (the same claim as the single
    task); one that fails is handed to `send_notification_email` to retry with backoff alone."""
    sent = 0
    for notification_id in notification_ids:
        try:
            services.notification_email_deliver(notification_id=notification_id)
            sent += 1
        except services.EmailRetry:
            send_notification_email.apply_async((notification_id,), countdown=60 + secrets.randbelow(30))
    return sent


@shared_task(name="notifications.tasks.notify_expiring_tokens", ignore_result=True)
def notify_expiring_tokens() -> int:
    return len(services.notify_expiring_tokens())


@shared_task(name="notifications.tasks.notify_low_balance", ignore_result=True)
def notify_low_balance() -> int:
    return len(services.notify_low_balance())


@shared_task(name="notifications.tasks.requeue_stuck_emails", ignore_result=True)
def requeue_stuck_emails() -> int:
    return len(services.notification_emails_requeue_stuck())
