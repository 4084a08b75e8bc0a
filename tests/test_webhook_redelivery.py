"""A webhook delivery whose worker was killed goes out at once when its message is redelivered
(issue 11 item 7): the lease records the message ("<task id>:<retries>") that took it, and the
same message may take it over; any other message still waits for the lease."""

from __future__ import annotations

import uuid

import pytest
from django.test import override_settings
from django.utils import timezone

from tests import jobs_support
from tests.concurrency import run_concurrently
from tests.factories import UserFactory
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from webhooks.tasks import deliver_webhook

receiver = jobs_support.receiver
celery_eager = jobs_support.celery_eager

pytestmark = pytest.mark.django_db


def make_delivery(receiver) -> int:
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        endpoint = services.webhook_endpoint_create(
            user=UserFactory(), url=receiver.url + "/hook", events=["balance.low"]
        ).endpoint
    return WebhookDelivery.objects.create(
        endpoint=endpoint, event="balance.low", event_id=f"msg_{uuid.uuid4().hex}", payload={"type": "x"}
    ).pk


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_redelivered_message_takes_its_own_lease_over_at_once(receiver):
    delivery_id = make_delivery(receiver)
    # A worker runs message "task-1" (first try): it claims the lease and is killed before sending.
    assert services._claim(delivery_id, timezone.now(), "task-1:0")
    row = WebhookDelivery.objects.get(pk=delivery_id)
    assert row.status == DeliveryStatus.SENDING and row.claimed_until > timezone.now()
    # Another message for the same delivery (e.g. the sweeper's) must wait for the lease.
    other = services.webhook_delivery_attempt(delivery_id=delivery_id, claim_key="task-2:0")
    assert other.status == DeliveryStatus.SENDING and receiver.received == []
    # The broker redelivers the same message: it goes out now, not after the 5-minute lease.
    result = deliver_webhook.apply(args=[delivery_id], task_id="task-1")
    assert result.get() == DeliveryStatus.SUCCEEDED
    assert len(receiver.received) == 1 and WebhookAttempt.objects.filter(delivery_id=delivery_id).count() == 1
    row.refresh_from_db()
    assert row.status == DeliveryStatus.SUCCEEDED and row.claimed_by == "" and row.claimed_until is None
    # Exactly once: running any message again sends nothing more.
    deliver_webhook.apply(args=[delivery_id], task_id="task-1")
    services.webhook_delivery_attempt(delivery_id=delivery_id, claim_key="task-3:0")
    assert len(receiver.received) == 1


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_a_retry_of_the_same_task_is_another_message(receiver):
    delivery_id = make_delivery(receiver)
    assert services._claim(delivery_id, timezone.now(), "task-1:0")
    assert services.webhook_delivery_attempt(delivery_id=delivery_id, claim_key="task-1:1").status == (
        DeliveryStatus.SENDING
    )
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_concurrent_workers_with_different_messages_send_once(requires_postgres, receiver):
    delivery_id = make_delivery(receiver)
    receiver.delay = 0.2  # keeps the sending attempt in flight while the others try
    results = run_concurrently(
        [
            lambda n=n: services.webhook_delivery_attempt(delivery_id=delivery_id, claim_key=f"task-{n}:0")
            for n in range(4)
        ]
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(receiver.received) == 1
    assert WebhookAttempt.objects.filter(delivery_id=delivery_id).count() == 1
