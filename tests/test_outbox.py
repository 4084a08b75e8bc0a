"""The outbox (ENGINEERING.md "Side effects"): webhook deliveries and notification rows are
written inside the business transaction; only the Celery enqueue waits for commit. A process
that dies between commit and enqueue loses nothing: the sweepers queue the rows that were never
attempted. A business transaction that rolls back writes no row."""

from datetime import timedelta
from unittest.mock import patch

import pytest
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from notifications.models import EmailStatus, Notification, NotificationKind
from notifications.services import notification_emails_requeue_stuck
from payments.providers import SIGNATURE_HEADER, mock_signature
from payments.services import payment_callback_process
from tests import jobs_support
from tests.factories import UserFactory, fund
from tests.payments_support import callback_body, start_payment
from tokens import services as token_services
from webhooks import services as webhook_services
from webhooks.models import DeliveryStatus, WebhookDelivery

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
