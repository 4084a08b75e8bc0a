"""Notifications: templated emails in the user's language (and the matching customer webhook),
decided once and sent after commit by a Celery task.

Templates live per language: `templates/emails/<lang>/<kind>_subject.txt`, `<kind>.txt` and
`<kind>.html`, chosen by `user.language` (falling back to LANGUAGE_CODE). Any later feature
(referral bonus, payment received, auto-renewal) sends through `notification_create` with its
own `kind`, a JSON-safe context and, if it has one, a webhook event. A user can switch each
kind's email off (EMAIL_PREFERENCES → the `notify_*` fields of User): the notification is still
recorded and its webhook still fires, only the email is skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime

from currency.models import Transaction
from notifications.models import EmailStatus, Notification, NotificationKind
from tokens.models import AccessToken

logger = logging.getLogger(__name__)
User = get_user_model()


# --- Rendering and sending ------------------------------------------------------------------


def email_language(language: str | None) -> str:
    codes = {code for code, _ in settings.LANGUAGES}
    return language if language in codes else settings.LANGUAGE_CODE


def _template_context(context: dict[str, Any]) -> dict[str, Any]:
    """JSON context → template context: `*_at` ISO strings back to aware datetimes."""
    result = dict(context)
    for key, value in context.items():
        if key.endswith("_at") and isinstance(value, str):
            result[key] = parse_datetime(value) or value
    return result


def email_render(*, template: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of `templates/emails/<language>/<template>*`."""
    language = email_language(language)
    try:
        get_template(f"emails/{language}/{template}.txt")
    except TemplateDoesNotExist:
        language = settings.LANGUAGE_CODE
    ctx = {"site_url": settings.SITE_URL.rstrip("/"), **_template_context(context)}
    with translation.override(language):
        subject = render_to_string(f"emails/{language}/{template}_subject.txt", ctx)
        text = render_to_string(f"emails/{language}/{template}.txt", ctx)
        html = render_to_string(f"emails/{language}/{template}.html", ctx)
    subject = " ".join(subject.split())  # one line: headers cannot hold newlines
    return subject, text, html


def email_send(*, to: str, template: str, language: str, context: dict[str, Any]) -> None:
    """Render and send one email now, through Django's email backend (console by default)."""
    subject, text, html = email_render(template=template, language=language, context=context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    message.send()


# --- Notifications ---------------------------------------------------------------------------

# The user's switch (a boolean field on User) that turns each kind's email off; kinds not listed
# are always emailed. A switched-off notification is still recorded (de-duplication rests on those
# rows) and its webhook still fires: only the email is skipped.
EMAIL_PREFERENCES: dict[str, str] = {
    NotificationKind.TOKEN_EXPIRING: "notify_token_expiring",
    NotificationKind.BALANCE_LOW: "notify_low_balance",
    NotificationKind.AUTO_RENEW_DONE: "notify_renewal",
    NotificationKind.AUTO_RENEW_FAILED: "notify_renewal",
    NotificationKind.PAYMENT_RECEIVED: "notify_payment",
}
EMAIL_TURNED_OFF = "Email turned off in the user's notification preferences."


def email_wanted(user, kind: str) -> bool:
    """Whether `user` wants the email of a notification of this `kind`."""
    field = EMAIL_PREFERENCES.get(kind)
    return field is None or bool(getattr(user, field, True))


def _queue_email(notification_id: int) -> None:
    from notifications.tasks import send_notification_email

    send_notification_email.delay(notification_id)


def notification_create(
    *,
    user,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str | None = None,
    webhook_event: str | None = None,
    webhook_data: dict[str, Any] | None = None,
) -> Notification | None:
    """Record a notification and, after commit, queue its email (and emit its webhook event).

    With a `dedupe_key` it happens at most once: a second call with the same key (even a
    concurrent one) returns None and queues nothing. Safe inside or outside a transaction.
    No email is queued (status skipped) for a user without an address or who switched this
    kind's email off; the record and the webhook event happen all the same.
    """
    if kind not in NotificationKind.values:
        raise ValueError(f"Unknown notification kind {kind!r}")
    turned_off = bool(user.email) and not email_wanted(user, kind)
    send_email = bool(user.email) and not turned_off
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user,
                kind=kind,
                dedupe_key=dedupe_key,
                context=context,
                language=email_language(getattr(user, "language", None)),
                email_status=EmailStatus.PENDING if send_email else EmailStatus.SKIPPED,
                last_error=EMAIL_TURNED_OFF if turned_off else "",
            )
    except IntegrityError:
        if dedupe_key and Notification.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        raise
    if send_email:
        transaction.on_commit(lambda: _queue_email(notification.pk), robust=True)
    if webhook_event:
        from webhooks.services import webhook_emit

        data = webhook_data if webhook_data is not None else context
        transaction.on_commit(
            lambda: webhook_emit(user_id=user.pk, event=webhook_event, data=data), robust=True
        )
    return notification


class EmailRetry(Exception):
    """The email could not be sent now; the task retries with backoff."""


def notification_email_deliver(*, notification_id: int, final_attempt: bool = False) -> str:
    """Send a notification's email once. Returns the resulting status.

    If the user has switched this kind of email off since the notification was decided, nothing
    is sent and the status becomes skipped.

    The row is claimed with a conditional UPDATE (pending → sending), so two workers running the
    same task send one email. A send error puts it back to pending (or failed on the last
    attempt) and raises `EmailRetry`.
    """
    claimed = Notification.objects.filter(pk=notification_id, email_status=EmailStatus.PENDING).update(
        email_status=EmailStatus.SENDING
    )
    if not claimed:
        status = (
            Notification.objects.filter(pk=notification_id).values_list("email_status", flat=True).first()
        )
        return status or "missing"
    notification = Notification.objects.select_related("user").get(pk=notification_id)
    if not email_wanted(notification.user, notification.kind):  # switched off since it was decided
        Notification.objects.filter(pk=notification_id).update(
            email_status=EmailStatus.SKIPPED, last_error=EMAIL_TURNED_OFF
        )
        return EmailStatus.SKIPPED
    attempts = notification.attempts + 1
    try:
        email_send(
            to=notification.user.email,
            template=notification.kind,
            language=notification.language or notification.user.language,
            context={"username": notification.user.username, **notification.context},
        )
    except TemplateDoesNotExist as exc:  # permanent: retrying cannot help
        Notification.objects.filter(pk=notification_id).update(
            email_status=EmailStatus.FAILED, attempts=attempts, last_error=f"No email template: {exc}"[:500]
        )
        logger.error(
            "notification %s: no email template for kind %r (%s)", notification_id, notification.kind, exc
        )
        return EmailStatus.FAILED
    except Exception as exc:
        status = EmailStatus.FAILED if final_attempt else EmailStatus.PENDING
        Notification.objects.filter(pk=notification_id).update(
            email_status=status, attempts=attempts, last_error=f"{type(exc).__name__}: {exc}"[:500]
        )
        logger.warning("notification %s: email failed (%s)", notification_id, exc)
        if final_attempt:
            return status
        raise EmailRetry(str(exc)) from exc
    Notification.objects.filter(pk=notification_id).update(
        email_status=EmailStatus.SENT, attempts=attempts, sent_at=timezone.now(), last_error=""
    )
    return EmailStatus.SENT


# --- The two notification jobs ---------------------------------------------------------------


def token_expiring_dedupe_key(token) -> str:
    """Once per token and expiry: a token renewed (new `expires_at`) is announced again."""
    return f"{NotificationKind.TOKEN_EXPIRING}:token:{token.pk}:{int(token.expires_at.timestamp())}"


def notify_expiring_tokens(*, now: datetime | None = None) -> list[int]:
    """One notification (email + `token.expiring` webhook) per running token that expires
    within TOKEN_EXPIRING_NOTIFY_HOURS, once per token (and per expiry, should a renewal move
    it). Returns the ids of tokens notified now."""
    from webhooks.events import token_event_data

    now = now or timezone.now()
    horizon = now + timedelta(hours=settings.TOKEN_EXPIRING_NOTIFY_HOURS)
    candidates = list(
        AccessToken.objects.filter(
            activated_at__isnull=False,
            revoked_at__isnull=True,
            expired_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=horizon,
            user__is_active=True,
        )
        .select_related("user")
        .order_by("expires_at", "pk")
    )
    notified: list[int] = []
    # Skip tokens already announced (one query); the unique key still guards against a
    # concurrent run that inserts between this read and our insert.
    seen = set(
        Notification.objects.filter(
            kind=NotificationKind.TOKEN_EXPIRING,
            dedupe_key__in=[token_expiring_dedupe_key(token) for token in candidates],
        ).values_list("dedupe_key", flat=True)
    )
    for token in candidates:
        key = token_expiring_dedupe_key(token)
        if key in seen:
            continue
        data = token_event_data(token)
        created = notification_create(
            user=token.user,
            kind=NotificationKind.TOKEN_EXPIRING,
            dedupe_key=key,
            context={
                "token_id": token.pk,
                "prefix": token.prefix,
                "duration_hours": token.duration_hours,
                "scope": token.scope,
                "expires_at": token.expires_at.isoformat(),
                "hours_left": max(0, int((token.expires_at - now).total_seconds() // 3600)),
            },
            webhook_event="token.expiring",
            webhook_data=data,
        )
        if created is not None:
            notified.append(token.pk)
    return notified


def notify_low_balance(*, now: datetime | None = None) -> list[int]:
    """Email (and `balance.low` webhook) to each active user whose balance is below
    LOW_BALANCE_THRESHOLD, at most once per LOW_BALANCE_NOTIFY_EVERY_HOURS per user.

    Users who never had a ledger entry (registered, never topped up) are not told their empty
    balance is "low". Each user is decided under a lock on their row, so concurrent runs cannot
    both send. Returns the ids of users notified now."""
    now = now or timezone.now()
    threshold = Decimal(settings.LOW_BALANCE_THRESHOLD)
    since = now - timedelta(hours=settings.LOW_BALANCE_NOTIFY_EVERY_HOURS)
    recent = Notification.objects.filter(
        user=OuterRef("pk"), kind=NotificationKind.BALANCE_LOW, created_at__gt=since
    )
    candidates = list(
        User.objects.filter(is_active=True, balance__lt=threshold)
        .filter(Exists(Transaction.objects.filter(user=OuterRef("pk"))))
        .exclude(Exists(recent))
        .values_list("pk", flat=True)
    )
    notified: list[int] = []
    for user_id in candidates:
        with transaction.atomic():
            user = User.objects.select_for_update(of=("self",)).filter(pk=user_id).first()
            if user is None or user.balance >= threshold or not user.is_active:
                continue
            if Notification.objects.filter(
                user_id=user_id, kind=NotificationKind.BALANCE_LOW, created_at__gt=since
            ).exists():
                continue
            balance = f"{user.balance:.2f}"
            notification_create(
                user=user,
                kind=NotificationKind.BALANCE_LOW,
                context={"balance": balance, "threshold": f"{threshold:.2f}"},
                webhook_event="balance.low",
                webhook_data={"balance": balance, "threshold": f"{threshold:.2f}"},
            )
            notified.append(user_id)
    return notified


def notification_emails_requeue_stuck(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Queue again emails whose task was lost: pending for over 10 minutes, or left "sending"
    for over 30 minutes by a worker that died mid-send (put back to pending first)."""
    now = now or timezone.now()
    Notification.objects.filter(
        email_status=EmailStatus.SENDING, created_at__lt=now - timedelta(minutes=30)
    ).update(email_status=EmailStatus.PENDING)
    stuck = list(
        Notification.objects.filter(
            email_status=EmailStatus.PENDING, created_at__lt=now - timedelta(minutes=10)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for notification_id in stuck:
        _queue_email(notification_id)
    return stuck
