"""The outbox (ENGINEERING.md "Side effects"): webhook deliveries and notification rows are
written inside the business transaction; only the Celery enqueue waits for commit. A process
that dies between commit and enqueue loses nothing: the sweepers deliver the rows that were never
attempted. A business transaction that rolls back writes no row.

One engine (`zenzefi.outbox`, issue 15) drives both: claim with SKIP LOCKED + lease + attempt in
one statement, one backoff formula, max attempts → failed, an expired lease claimable again and
an unexpired one never, and no Celery retry on top."""

import uuid
from datetime import timedelta
from unittest.mock import patch

import pytest
from django.core import mail
from django.db import transaction
from django.db.models import Q
from django.test import override_settings
from django.utils import timezone

from notifications import services as notification_services
from notifications.models import EmailStatus, Notification, NotificationKind
from notifications.services import notification_emails_requeue_stuck
from payments.providers import SIGNATURE_HEADER, mock_signature
from payments.services import payment_callback_process
from tests import jobs_support
from tests.concurrency import run_concurrently
from tests.factories import UserFactory, fund
from tests.payments_support import callback_body, start_payment
from tokens import services as token_services
from webhooks import services as webhook_services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from webhooks.tasks import deliver_webhook
from zenzefi import outbox

celery_eager = jobs_support.celery_eager
receiver = jobs_support.receiver

EVENTS = ["token.purchased", "payment.succeeded"]


class _Rollback(Exception):
    pass


def _drop_enqueue():
    """What a crash between commit and on_commit leaves: the transaction commits, none of its
    on_commit callbacks runs (so no task is sent)."""
    patches = [patch.object(transaction, "on_commit", lambda *a, **k: None)]
    for p in patches:
        p.start()
    return patches


def _sweep(now):
    return (
        webhook_services.webhook_deliveries_requeue_overdue(now=now),
        notification_emails_requeue_stuck(now=now),
    )


@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"], OUTBOX_GRACE_SECONDS=60)
def test_dropped_enqueue_is_delivered_once_by_the_sweepers(receiver, celery_eager):
    user = UserFactory(email="buyer@example.com")
    webhook_services.webhook_endpoint_create(user=user, url=receiver.url + "/hook", events=EVENTS)
    fund(user, "100")
    payment = start_payment(user, "42.50")
    body = callback_body(payment.provider_payment_id)
    patches = _drop_enqueue()
    try:  # real commits; the enqueue after each one is lost
        token_services.token_purchase(user=user, duration_hours=24)
        payment_callback_process(provider="mock", body=body, headers={SIGNATURE_HEADER: mock_signature(body)})
    finally:
        for p in patches:
            p.stop()
    assert receiver.received == [] and mail.outbox == []
    assert sorted(WebhookDelivery.objects.values_list("event", "status")) == [
        ("payment.succeeded", DeliveryStatus.PENDING),
        ("token.purchased", DeliveryStatus.PENDING),
    ]
    note = Notification.objects.get(user=user, kind=NotificationKind.PAYMENT_RECEIVED)
    assert note.email_status == EmailStatus.PENDING and note.attempts == 0

    # Within the grace period the sweepers leave them alone (the enqueue may still be on its way).
    assert _sweep(timezone.now()) == ([], [])
    later = timezone.now() + timedelta(seconds=61)
    swept_hooks, swept_emails = _sweep(later)
    assert len(swept_hooks) == 2 and swept_emails == [note.pk]
    _sweep(later + timedelta(minutes=30))  # a second sweep sends nothing again

    assert sorted(r.json["type"] for r in receiver.received) == sorted(EVENTS)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["buyer@example.com"]
    note.refresh_from_db()
    assert note.email_status == EmailStatus.SENT and note.attempts == 1


@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_rolled_back_business_transaction_writes_no_row(receiver, celery_eager):
    user = UserFactory(email="buyer@example.com")
    webhook_services.webhook_endpoint_create(user=user, url=receiver.url + "/hook", events=EVENTS)
    fund(user, "100")
    payment = start_payment(user, "42.50")
    body = callback_body(payment.provider_payment_id)
    with pytest.raises(_Rollback), transaction.atomic():
        token_services.token_purchase(user=user, duration_hours=24)
        payment_callback_process(provider="mock", body=body, headers={SIGNATURE_HEADER: mock_signature(body)})
        assert WebhookDelivery.objects.count() == 2  # written inside the transaction…
        assert Notification.objects.filter(user=user).count() == 1
        raise _Rollback
    assert WebhookDelivery.objects.count() == 0  # …and gone with it
    assert not Notification.objects.filter(user=user).exists()
    assert _sweep(timezone.now() + timedelta(hours=1)) == ([], [])
    assert receiver.received == [] and mail.outbox == []


# --- The engine ------------------------------------------------------------------------------

LOCMEM = override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("SMTP is down")


def _endpoint(receiver, user=None):
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        return webhook_services.webhook_endpoint_create(
            user=user or UserFactory(), url=receiver.url + "/hook", events=["balance.low"]
        ).endpoint


def _delivery(endpoint, **fields) -> WebhookDelivery:
    """A delivery row as `webhook_emit` writes it, without queueing anything."""
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event="balance.low",
        event_id=f"msg_{uuid.uuid4().hex}",
        payload={"type": "balance.low"},
        **fields,
    )


def _email(user, **fields) -> Notification:
    return Notification.objects.create(
        user=user,
        kind=NotificationKind.BALANCE_LOW,
        context={"balance": "1.00", "threshold": "10.00"},
        **fields,
    )


def _never_queued(model, pks):
    model.objects.filter(pk__in=pks).update(created_at=timezone.now() - timedelta(minutes=5))


@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_two_sweepers_at_once_process_each_row_once(requires_postgres, receiver):
    receiver.delay = 0.05  # keep each sweeper busy while the other claims
    endpoint = _endpoint(receiver)
    users = [UserFactory(language="en") for _ in range(8)]
    deliveries = [_delivery(endpoint).pk for _ in range(12)]
    emails = [_email(u).pk for u in users]
    _never_queued(WebhookDelivery, deliveries)
    _never_queued(Notification, emails)

    def sweeper():
        return (
            outbox.sweep(webhook_services.DELIVERIES, chunk_size=3),
            outbox.sweep(notification_services.EMAILS, chunk_size=3),
        )

    with LOCMEM:
        mail.outbox = []
        results = run_concurrently([sweeper, sweeper])
        sent = [m.to[0] for m in mail.outbox]
    assert not [r for r in results if isinstance(r, Exception)], results
    (hooks_a, emails_a), (hooks_b, emails_b) = results
    assert not set(hooks_a) & set(hooks_b) and sorted(hooks_a + hooks_b) == sorted(deliveries)
    assert not set(emails_a) & set(emails_b) and sorted(emails_a + emails_b) == sorted(emails)
    assert len(receiver.received) == len(deliveries)
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(
        WebhookDelivery.objects.values_list("event_id", flat=True)
    )
    assert sorted(sent) == sorted(u.email for u in users)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SUCCEEDED, 1)}
    assert set(Notification.objects.values_list("email_status", "attempts")) == {(EmailStatus.SENT, 1)}
    assert WebhookAttempt.objects.count() == len(deliveries)


@pytest.mark.django_db(transaction=True)
def test_claim_is_one_skip_locked_statement_with_the_lease(requires_postgres, receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    endpoint = _endpoint(receiver)
    pks = [_delivery(endpoint).pk for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        claimed = outbox._claim(
            webhook_services.DELIVERIES, Q(pk__in=pks), now=timezone.now(), token="t", limit=2
        )
    [sql] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert "FOR UPDATE SKIP LOCKED" in sql and "LIMIT 2" in sql and "RETURNING" in sql
    assert len(claimed) == 2 and set(claimed) < set(pks)
    rows = WebhookDelivery.objects.filter(pk__in=claimed)
    assert {(r.status, r.attempts, r.claimed_by) for r in rows} == {(DeliveryStatus.SENDING, 1, "t")}
    assert all(r.claimed_until > timezone.now() for r in rows)


@pytest.mark.django_db
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_an_expired_lease_is_taken_again(receiver):
    """The worker holding the row was killed mid-send: once its lease expires, the sweeper (and
    any trigger) takes the row; the lost attempt counts."""
    endpoint = _endpoint(receiver)
    user = UserFactory(language="en")
    expired = timezone.now() - timedelta(seconds=1)
    hook = _delivery(
        endpoint, status=DeliveryStatus.SENDING, attempts=1, claimed_by="dead", claimed_until=expired
    )
    note = _email(
        user, email_status=EmailStatus.SENDING, attempts=1, claimed_by="dead", claimed_until=expired
    )
    with LOCMEM:
        mail.outbox = []
        assert webhook_services.webhook_deliveries_requeue_overdue() == [hook.pk]
        assert notification_emails_requeue_stuck() == [note.pk]
        assert len(mail.outbox) == 1
    hook.refresh_from_db()
    note.refresh_from_db()
    assert (hook.status, hook.attempts, hook.claimed_by) == (DeliveryStatus.SUCCEEDED, 2, "")
    assert (note.email_status, note.attempts, note.claimed_by) == (EmailStatus.SENT, 2, "")
    assert len(receiver.received) == 1
    # A trigger takes an expired lease too.
    again = _delivery(
        endpoint, status=DeliveryStatus.SENDING, attempts=1, claimed_by="dead", claimed_until=expired
    )
    assert webhook_services.webhook_delivery_attempt(delivery_id=again.pk).status == DeliveryStatus.SUCCEEDED
    assert len(receiver.received) == 2


@pytest.mark.django_db
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_an_unexpired_lease_is_never_taken(receiver):
    """A slow send still in progress (lease not expired), however old the row: neither the
    sweeper nor another trigger sends it a second time, and the holder's outcome still lands."""
    endpoint = _endpoint(receiver)
    user = UserFactory(language="en")
    old = timezone.now() - timedelta(hours=2)
    lease = timezone.now() + timedelta(seconds=30)
    hook = _delivery(
        endpoint, status=DeliveryStatus.SENDING, attempts=1, claimed_by="slow", claimed_until=lease
    )
    note = _email(user, email_status=EmailStatus.SENDING, attempts=1, claimed_by="slow", claimed_until=lease)
    _never_queued(WebhookDelivery, [hook.pk])
    Notification.objects.filter(pk=note.pk).update(created_at=old)
    with LOCMEM:
        mail.outbox = []
        assert webhook_services.webhook_deliveries_requeue_overdue() == []
        assert notification_emails_requeue_stuck() == []
        assert webhook_services.webhook_delivery_attempt(delivery_id=hook.pk, claim_key="other:0").status == (
            DeliveryStatus.SENDING
        )
        assert (
            notification_services.notification_email_deliver(notification_id=note.pk) == EmailStatus.SENDING
        )
        assert mail.outbox == []
    assert receiver.received == []
    hook.refresh_from_db()
    assert (hook.status, hook.attempts, hook.claimed_by) == (DeliveryStatus.SENDING, 1, "slow")
    # The slow worker finishes: its fenced outcome is recorded (the lease is still its own).
    finished = outbox._finish(webhook_services.DELIVERIES, hook, "slow", outbox.Result(ok=True))
    assert finished.status == DeliveryStatus.SUCCEEDED
    # A worker whose lease was taken over writes nothing.
    assert outbox._finish(
        notification_services.EMAILS, note, "someone-else", outbox.Result(ok=True)
    ).status == (EmailStatus.SENDING)
    assert Notification.objects.get(pk=note.pk).claimed_by == "slow"


def test_one_backoff_formula():
    for n in range(1, 12):
        base = min(30 * 2 ** (n - 1), 900)
        assert base <= outbox.backoff_seconds(n, base=30, cap=900) <= base + base // 5 + 1
    no_jitter = patch.object(outbox.secrets, "randbelow", return_value=0)
    with override_settings(WEBHOOK_RETRY_BASE_SECONDS=7, WEBHOOK_RETRY_MAX_SECONDS=100), no_jitter:
        assert [webhook_services.backoff_seconds(n) for n in range(1, 7)] == [7, 14, 28, 56, 100, 100]
        assert [webhook_services.DELIVERIES.backoff(n) for n in range(1, 7)] == [7, 14, 28, 56, 100, 100]
    with override_settings(EMAIL_RETRY_BASE_SECONDS=7, EMAIL_RETRY_MAX_SECONDS=100), no_jitter:
        assert [notification_services.EMAILS.backoff(n) for n in range(1, 7)] == [7, 14, 28, 56, 100, 100]


@pytest.mark.django_db
@override_settings(
    WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"],
    WEBHOOK_MAX_ATTEMPTS=4,
    WEBHOOK_RETRY_BASE_SECONDS=10,
    WEBHOOK_RETRY_MAX_SECONDS=25,
    EMAIL_BACKEND="tests.test_outbox.FailingBackend",
    EMAIL_MAX_ATTEMPTS=4,
    EMAIL_RETRY_BASE_SECONDS=10,
    EMAIL_RETRY_MAX_SECONDS=25,
)
def test_backoff_schedule_then_dead_with_no_celery_retry(receiver, django_capture_on_commit_callbacks):
    """Each failed attempt schedules the next one on the row with the one formula and queues one
    trigger with that countdown; the last one leaves the row failed and queues nothing. Celery's
    retry is never used."""
    from celery.app.task import Task

    from notifications.tasks import send_notification_email

    receiver.statuses = [500]
    hook = _delivery(_endpoint(receiver))
    note = _email(UserFactory(language="en"))
    jobs = [
        (WebhookDelivery, "status", hook.pk, deliver_webhook, DeliveryStatus),
        (Notification, "email_status", note.pk, send_notification_email, EmailStatus),
    ]
    with (
        patch.object(outbox.secrets, "randbelow", return_value=0),
        patch.object(Task, "retry") as celery_retry,
    ):
        for model, status_field, pk, task, statuses in jobs:
            expected = [10, 20, 25]
            for number in range(1, 5):
                with django_capture_on_commit_callbacks(execute=False) as queued:
                    result = task.apply(args=[pk])
                assert result.state == "SUCCESS"  # a trigger ends; it never raises Retry
                row = model.objects.get(pk=pk)
                assert row.attempts == number and row.claimed_by == "" and row.claimed_until is None
                if number < 4:
                    wait = expected[number - 1]
                    assert getattr(row, status_field) == statuses.RETRYING and len(queued) == 1
                    left = (row.next_attempt_at - timezone.now()).total_seconds()
                    assert wait - 2 < left <= wait
                    with patch.object(task, "apply_async") as trigger:
                        queued[0]()  # after commit: the next attempt's trigger, the backoff as countdown
                    trigger.assert_called_once_with((pk,), {"attempts": number}, countdown=wait)
                else:
                    assert getattr(row, status_field) == statuses.FAILED and queued == []
                    assert row.next_attempt_at is None
    celery_retry.assert_not_called()
    assert len(receiver.received) == 4
    assert list(
        WebhookAttempt.objects.filter(delivery_id=hook.pk).values_list("retry_in_seconds", flat=True)
    ) == [
        10,
        20,
        25,
        None,
    ]
    # Dead is final: neither a trigger nor the sweeper sends again.
    deliver_webhook.apply(args=[hook.pk])
    assert webhook_services.webhook_deliveries_requeue_overdue(now=timezone.now() + timedelta(days=1)) == []
    assert notification_emails_requeue_stuck(now=timezone.now() + timedelta(days=1)) == []
    assert len(receiver.received) == 4


@pytest.mark.django_db
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"], WEBHOOK_MAX_ATTEMPTS=3, EMAIL_MAX_ATTEMPTS=3)
def test_a_lease_that_expires_on_the_last_attempt_is_dead(receiver):
    expired = timezone.now() - timedelta(seconds=1)
    hook = _delivery(
        _endpoint(receiver), status=DeliveryStatus.SENDING, attempts=3, claimed_by="x", claimed_until=expired
    )
    note = _email(
        UserFactory(), email_status=EmailStatus.SENDING, attempts=3, claimed_by="x", claimed_until=expired
    )
    assert webhook_services.webhook_deliveries_requeue_overdue() == []
    assert notification_emails_requeue_stuck() == []
    hook.refresh_from_db()
    note.refresh_from_db()
    assert hook.status == DeliveryStatus.FAILED and "lease" in hook.last_error and hook.claimed_by == ""
    assert note.email_status == EmailStatus.FAILED and note.attempts == 3
    assert receiver.received == []


@pytest.mark.django_db
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_a_stale_retry_trigger_does_nothing(receiver):
    """The retry trigger names the attempts made when it was queued; if the sweeper made that
    attempt meanwhile (and scheduled the next one), the late trigger does not jump the backoff."""
    later = timezone.now() + timedelta(minutes=5)
    hook = _delivery(_endpoint(receiver), status=DeliveryStatus.RETRYING, attempts=2, next_attempt_at=later)
    note = _email(UserFactory(), email_status=EmailStatus.RETRYING, attempts=2, next_attempt_at=later)
    with LOCMEM:
        mail.outbox = []
        assert deliver_webhook.apply(args=[hook.pk], kwargs={"attempts": 1}).get() == DeliveryStatus.RETRYING
        assert (
            notification_services.notification_email_deliver(notification_id=note.pk, attempts=1)
            == EmailStatus.RETRYING
        )
        assert receiver.received == [] and mail.outbox == []
        # The trigger queued for this attempt goes out (at its countdown; here at once).
        assert deliver_webhook.apply(args=[hook.pk], kwargs={"attempts": 2}).get() == DeliveryStatus.SUCCEEDED
        assert notification_services.notification_email_deliver(notification_id=note.pk, attempts=2) == (
            EmailStatus.SENT
        )
        assert len(mail.outbox) == 1
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get(pk=hook.pk).attempts == 3
