from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from notifications import services
from notifications.models import EmailStatus, Notification, NotificationKind
from notifications.tasks import notify_expiring_tokens, notify_low_balance, send_notification_email
from tests import jobs_support
from tests.concurrency import run_concurrently
from tests.factories import UserFactory, fund
from tokens import services as token_services
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create

# Shared fixtures (tests/jobs_support.py).
celery_eager = jobs_support.celery_eager
receiver = jobs_support.receiver

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("celery_eager"),
]
LOCMEM = override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")


@pytest.fixture(autouse=True)
def _locmem_email():
    with LOCMEM:
        mail.outbox = []
        yield


def running_token(user, *, hours=24, started_ago=timedelta(0)):
    """A bought and activated token (its clock started `started_ago`)."""
    fund(user, "400")
    issued = token_services.token_purchase(user=user, duration_hours=hours)
    return token_services.token_activate(token=issued.token, now=timezone.now() - started_ago)


def run(task, capture):
    with capture(execute=True):
        return task.apply().get()


# --- Token expiring soon ------------------------------------------------------------------


@pytest.mark.parametrize(
    "language,subject_word,body_word",
    [("en", "expires soon", "Hello"), ("ru", "скоро истекает", "Здравствуйте")],
)
def test_exactly_one_expiring_email_per_token_in_users_language(
    django_capture_on_commit_callbacks, language, subject_word, body_word
):
    user = UserFactory(language=language)
    token = running_token(user, hours=24, started_ago=timedelta(hours=2))
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email] and subject_word in message.subject
    assert body_word in message.body and token.prefix in message.body
    assert token.expires_at.strftime("%Y-%m-%d %H:%M") in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and token.prefix in html and f'lang="{language}"' in html
    notification = Notification.objects.get(kind=NotificationKind.TOKEN_EXPIRING)
    assert notification.email_status == EmailStatus.SENT and notification.sent_at is not None
    # Twice, and again later: still exactly one email for this token.
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0
    with time_machine.travel(timezone.now() + timedelta(hours=12)):
        assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 1 and Notification.objects.count() == 1


def test_expiring_waits_until_within_24h_and_skips_others(django_capture_on_commit_callbacks):
    user = UserFactory(language="en")
    long_token = running_token(user, hours=168)  # expires in 7 days
    fund(user, "100")
    token_services.token_purchase(user=user, duration_hours=24)  # never activated: never expires
    revoked = running_token(user, hours=24)
    token_services.token_revoke(token_id=revoked.pk, actor=user, owner=user)
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []
    with time_machine.travel(long_token.expires_at - timedelta(hours=23)):
        assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 1 and long_token.prefix in mail.outbox[0].subject
    # Already expired tokens are not announced.
    with time_machine.travel(long_token.expires_at + timedelta(minutes=1)):
        assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_expiring_also_sends_token_expiring_webhook(receiver, django_capture_on_commit_callbacks):
    user = UserFactory()
    endpoint = webhook_endpoint_create(user=user, url=receiver.url, events=["token.expiring"]).endpoint
    token = running_token(user, hours=12)
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 1
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event == "token.expiring" and delivery.payload["data"]["token_id"] == token.pk
    assert [r.json["type"] for r in receiver.received] == ["token.expiring"]
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0
    assert WebhookDelivery.objects.count() == 1 and len(receiver.received) == 1


def test_no_email_for_inactive_user_or_without_address(django_capture_on_commit_callbacks):
    inactive = UserFactory(is_active=False)
    running_token(inactive, hours=12)
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []


# --- Low balance -------------------------------------------------------------------------------


@pytest.mark.parametrize("language,subject_word", [("en", "balance is low"), ("ru", "Низкий баланс")])
def test_low_balance_at_most_once_per_24h_in_users_language(
    django_capture_on_commit_callbacks, language, subject_word
):
    user = UserFactory(language=language)
    fund(user, "5")
    assert run(notify_low_balance, django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 1
    # Amounts in the reader's locale: 5.00 / 5,00.
    sep = "," if language == "ru" else "."
    assert subject_word in mail.outbox[0].subject and f"5{sep}00" in mail.outbox[0].body
    assert f"10{sep}00" in mail.outbox[0].body
    assert run(notify_low_balance, django_capture_on_commit_callbacks) == 0  # idempotent
    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        assert run(notify_low_balance, django_capture_on_commit_callbacks) == 0
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        assert run(notify_low_balance, django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 2


def test_low_balance_skips_healthy_empty_and_inactive(django_capture_on_commit_callbacks):
    rich = UserFactory()
    fund(rich, "10")  # exactly the threshold: not below it
    UserFactory()  # never had money: not told it is "low"
    gone = UserFactory(is_active=False)
    fund(gone, "1")
    assert run(notify_low_balance, django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []


@override_settings(LOW_BALANCE_THRESHOLD=Decimal("50"))
def test_threshold_is_a_setting(django_capture_on_commit_callbacks):
    user = UserFactory(language="en")
    fund(user, "20")
    assert run(notify_low_balance, django_capture_on_commit_callbacks) == 1
    assert "50.00" in mail.outbox[0].body


# --- The email task -------------------------------------------------------------------------


def test_email_task_sends_once(django_capture_on_commit_callbacks):
    user = UserFactory(language="en")
    with django_capture_on_commit_callbacks(execute=False):
        notification = services.notification_create(
            user=user, kind=NotificationKind.BALANCE_LOW, context={"balance": "1.00", "threshold": "10.00"}
        )
    send_notification_email.apply(args=[notification.pk])
    send_notification_email.apply(args=[notification.pk])
    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.SENT and notification.attempts == 1


def test_dedupe_key_makes_a_notification_happen_once(django_capture_on_commit_callbacks):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.notification_create(
            user=user, kind=NotificationKind.REFERRAL_BONUS, context={}, dedupe_key="referral:1"
        )
        second = services.notification_create(
            user=user, kind=NotificationKind.REFERRAL_BONUS, context={}, dedupe_key="referral:1"
        )
    assert first is not None and second is None
    assert Notification.objects.count() == 1


@override_settings(
    EMAIL_BACKEND="tests.test_notifications.FailingBackend",
    EMAIL_MAX_ATTEMPTS=2,
    EMAIL_RETRY_BASE_SECONDS=60,
    EMAIL_RETRY_MAX_SECONDS=3600,
)
def test_send_failure_is_retried_and_recorded(django_capture_on_commit_callbacks):
    """(Issue 15: was `EmailRetry` + Celery's retry count; now the row's own attempts.)"""
    user = UserFactory(language="en")
    with django_capture_on_commit_callbacks(execute=False):
        notification = services.notification_create(
            user=user, kind=NotificationKind.BALANCE_LOW, context={"balance": "1.00", "threshold": "10.00"}
        )
    with django_capture_on_commit_callbacks(execute=False) as retries:
        assert services.notification_email_deliver(notification_id=notification.pk) == EmailStatus.RETRYING
    assert len(retries) == 1  # the next attempt's trigger, queued after commit
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.RETRYING and notification.attempts == 1
    assert "SMTP is down" in notification.last_error and notification.claimed_by == ""
    wait = notification.next_attempt_at - timezone.now()
    assert timedelta(seconds=55) < wait <= timedelta(seconds=73)  # 60 s + up to 20 %
    with django_capture_on_commit_callbacks(execute=False) as retries:
        assert services.notification_email_deliver(notification_id=notification.pk) == EmailStatus.FAILED
    assert retries == []  # the last attempt: nothing more is queued
    notification.refresh_from_db()
    assert notification.attempts == 2 and notification.next_attempt_at is None
    assert services.notification_email_deliver(notification_id=notification.pk) == EmailStatus.FAILED


def test_unknown_language_falls_back_to_default(settings):
    subject, _text, _html = services.email_render(
        template="balance_low",
        language="de",
        context={"balance": "1.00", "threshold": "10.00", "username": "x"},
    )
    assert settings.LANGUAGE_CODE == "ru" and "Низкий баланс" in subject


def test_plain_text_is_not_html_escaped():
    _subject, text, html = services.email_render(
        template="balance_low",
        language="en",
        context={"balance": "1.00", "threshold": "10.00", "username": "a&b"},
    )
    assert "Hello a&b," in text and "a&amp;b" in html


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("SMTP is down")


SAMPLE_CONTEXTS = {
    NotificationKind.TOKEN_EXPIRING: {
        "token_id": 1,
        "prefix": "AbCdEfGh",
        "duration_hours": 24,
        "scope": "full",
        "expires_at": "2026-03-10T12:00:00+00:00",
        "hours_left": 5,
    },
    NotificationKind.BALANCE_LOW: {"balance": "3.00", "threshold": "10.00"},
    NotificationKind.REFERRAL_BONUS: {
        "referred_username": "friend",
        "deposit_amount": "150.00",
        "bonus": "15.00",
        "total_bonus": "15.00",
        "balance": "15.00",
    },
    NotificationKind.PAYMENT_RECEIVED: {
        "payment_id": 7,
        "amount": "100.00",
        "currency": "RUB",
        "original_amount": "9000.00",
        "balance": "100.00",
        "completed_at": "2026-03-10T12:00:00+00:00",
    },
    NotificationKind.AUTO_RENEW_DONE: {
        "token_id": 1,
        "prefix": "AbCdEfGh",
        "duration_hours": 24,
        "price": "18.00",
        "balance": "82.00",
        "expires_at": "2026-03-11T12:00:00+00:00",
    },
    NotificationKind.AUTO_RENEW_FAILED: {
        "token_id": 1,
        "prefix": "AbCdEfGh",
        "duration_hours": 24,
        "price": "18.00",
        "balance": "5.00",
        "min_balance": "0.00",
        "reason": "insufficient_balance",
        "expires_at": "2026-03-10T12:00:00+00:00",
    },
}


@pytest.mark.parametrize("language", ["ru", "en"])
@pytest.mark.parametrize("kind", NotificationKind.values)
def test_every_kind_has_templates_in_both_languages(kind, language):
    subject, text, html = services.email_render(
        template=kind, language=language, context={"username": "ivan", **SAMPLE_CONTEXTS[kind]}
    )
    assert subject and "\n" not in subject and "{{" not in subject
    assert "ivan" in text and "{{" not in text and "{%" not in text
    assert html.startswith("<!doctype html>") and f'lang="{language}"' in html
    if "expires_at" in SAMPLE_CONTEXTS[kind]:
        assert "2026-03-1" in text  # the date is rendered, not left as an ISO string


def test_lost_emails_are_queued_again(django_capture_on_commit_callbacks):
    from notifications.tasks import requeue_stuck_emails

    user = UserFactory(language="en")
    context = {"balance": "1.00", "threshold": "10.00"}
    with django_capture_on_commit_callbacks(execute=False):  # the queued tasks are "lost"
        lost = services.notification_create(user=user, kind=NotificationKind.BALANCE_LOW, context=context)
        crashed = services.notification_create(user=user, kind=NotificationKind.BALANCE_LOW, context=context)
        slow = services.notification_create(user=user, kind=NotificationKind.BALANCE_LOW, context=context)
        fresh = services.notification_create(user=user, kind=NotificationKind.BALANCE_LOW, context=context)
    Notification.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    # Issue 15: "sending" is judged by its lease, not by the row's age (was: sending for 30 min
    # by created_at, so a slow send could go out twice). Its worker died: the lease expired.
    Notification.objects.filter(pk=crashed.pk).update(
        created_at=timezone.now() - timedelta(minutes=31),
        email_status=EmailStatus.SENDING,
        attempts=1,
        claimed_by="dead-worker",
        claimed_until=timezone.now() - timedelta(seconds=1),
    )
    # Still sending under an unexpired lease, however old the row: left alone.
    Notification.objects.filter(pk=slow.pk).update(
        created_at=timezone.now() - timedelta(minutes=31),
        email_status=EmailStatus.SENDING,
        attempts=1,
        claimed_by="slow-worker",
        claimed_until=timezone.now() + timedelta(minutes=1),
    )
    assert requeue_stuck_emails.apply().get() == 2
    assert len(mail.outbox) == 2
    assert Notification.objects.get(pk=fresh.pk).email_status == EmailStatus.PENDING
    assert Notification.objects.get(pk=slow.pk).email_status == EmailStatus.SENDING
    assert Notification.objects.get(pk=crashed.pk).attempts == 2
    assert requeue_stuck_emails.apply().get() == 0
    assert len(mail.outbox) == 2


def test_a_renewed_token_is_announced_again_for_its_new_expiry(django_capture_on_commit_callbacks):
    from tokens.models import AccessToken

    user = UserFactory(language="en")
    token = running_token(user, hours=24, started_ago=timedelta(hours=4))
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 1
    # A renewal (another app's service) moves the expiry 24 h on.
    AccessToken.objects.filter(pk=token.pk).update(expires_at=token.expires_at + timedelta(hours=24))
    assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0  # 44 h left
    with time_machine.travel(token.expires_at + timedelta(hours=2)):
        assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 1
        assert run(notify_expiring_tokens, django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_notify_once(requires_postgres):
    low = UserFactory(language="en")
    fund(low, "5")
    expiring_owner = UserFactory(language="en")
    running_token(expiring_owner, hours=12)
    mail.outbox = []  # (the purchases above made none; be explicit)
    jobs = (
        services.notify_low_balance,
        services.notify_low_balance,
        services.notify_expiring_tokens,
        services.notify_expiring_tokens,
    )
    results = run_concurrently(list(jobs))
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert Notification.objects.filter(kind=NotificationKind.BALANCE_LOW).count() == 1
    assert Notification.objects.filter(kind=NotificationKind.TOKEN_EXPIRING).count() == 1
    assert sorted(m.to[0] for m in mail.outbox) == sorted([low.email, expiring_owner.email])
