import base64
import hashlib
import hmac
import time
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import Resolver404, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from tests import jobs_support
from tests.concurrency import run_threads
from tests.factories import UserFactory, fund
from tokens import services as token_services
from webhooks import services, signing
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.tasks import deliver_webhook
from webhooks.urlsafety import address_refused, check_url

# Shared fixtures (tests/jobs_support.py).
celery_eager = jobs_support.celery_eager
receiver = jobs_support.receiver

pytestmark = pytest.mark.django_db

LIST = "/api/v1/webhooks/"
PUBLIC_URL = "http://93.184.216.34/hooks/zenzefi"  # an IP literal: resolves without DNS


def receiver_verify(secret: str, headers: dict, body: bytes, *, tolerance: int = 300) -> bool:
    """What a customer's receiver does (written from the Standard Webhooks text, not our code)."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    return any(
        hmac.compare_digest(sig.split(",", 1)[1], expected)
        for sig in headers["webhook-signature"].split()
        if sig.startswith("v1,")
    )


def create(client, url=PUBLIC_URL, events=("token.purchased",)):
    return client.post(LIST, {"url": url, "events": list(events)}, format="json")


@pytest.fixture
def local_endpoint(user, receiver):
    """An endpoint of `user` on the local receiver (127.0.0.1 allowed for the test)."""
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        created = services.webhook_endpoint_create(
            user=user,
            url=receiver.url + "/hook",
            events=["token.purchased", "token.revoked", "token.expired"],
        )
        yield created


# --- API -----------------------------------------------------------------------------------


def test_create_shows_secret_once_and_list_never(auth_client, user):
    response = create(auth_client, events=["token.purchased", "token.expired", "token.purchased"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 32
    assert body["events"] == ["token.purchased", "token.expired"] and body["is_active"] is True
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert signing.endpoint_secret(endpoint) == body["secret"]
    # Not stored: no column holds the secret (only a salt).
    stored = " ".join(
        str(v) for v in WebhookEndpoint.objects.filter(pk=endpoint.pk).values().first().values()
    )
    assert body["secret"] not in stored and body["secret"][6:] not in stored
    listed = auth_client.get(LIST).json()
    assert listed["count"] == 1 and listed["skip"] == 0
    assert "secret" not in listed["results"][0] and listed["results"][0]["url"] == PUBLIC_URL
    assert AuditLog.objects.filter(action="webhook.create", resource_id=str(endpoint.pk)).exists()


def test_list_is_own_and_paginated(auth_client, user):
    other = UserFactory()
    services.webhook_endpoint_create(user=other, url=PUBLIC_URL, events=["balance.low"])
    for _ in range(3):
        assert create(auth_client).status_code == 201
    page = auth_client.get(LIST, {"skip": 1, "limit": 1}).json()
    assert page["count"] == 3 and len(page["results"]) == 1
    assert auth_client.get(LIST, {"limit": 0}).status_code == 400


def test_secret_differs_per_endpoint_and_depends_on_signing_key(user):
    a = services.webhook_endpoint_create(user=user, url=PUBLIC_URL, events=["balance.low"])
    b = services.webhook_endpoint_create(user=user, url=PUBLIC_URL, events=["balance.low"])
    assert a.secret != b.secret
    with override_settings(WEBHOOK_SIGNING_KEY="another-key"):
        assert signing.endpoint_secret(a.endpoint) != a.secret


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "events": ["token.exploded"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL},
        {"events": ["token.purchased"]},
        {"url": "ftp://93.184.216.34/x", "events": ["token.purchased"]},
        {"url": "javascript:alert(1)", "events": ["token.purchased"]},
        {"url": "http://user:pw@93.184.216.34/", "events": ["token.purchased"]},
        {"url": "not a url", "events": ["token.purchased"]},
    ],
)
def test_bad_input_is_400_and_creates_nothing(auth_client, body):
    response = auth_client.post(LIST, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("invalid", "webhook_url_refused", "invalid_events")
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.0.0.1:8000/hook",
        "http://10.0.0.1/hook",
        "http://192.168.1.10/hook",
        "http://172.16.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
        "https://[fe80::1]/hook",
    ],
)
def test_ssrf_refused_at_creation(auth_client, url):
    response = create(auth_client, url=url)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "webhook_url_refused"
    assert WebhookEndpoint.objects.count() == 0


def test_unresolvable_host_refused(auth_client):
    response = create(auth_client, url="http://no-such-host.invalid/hook")
    assert response.status_code == 400 and response.json()["code"] == "webhook_url_refused"


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1", "LocalHost"])
def test_allowed_hosts_let_internal_receivers_through(auth_client):
    assert create(auth_client, url="http://127.0.0.1:9999/hook").status_code == 201
    assert create(auth_client, url="http://localhost:9999/hook").status_code == 201
    assert create(auth_client, url="http://10.0.0.1/hook").status_code == 400


def test_address_classification():
    assert address_refused("8.8.8.8") is None
    assert address_refused("2606:4700:4700::1111") is None
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "::1",
        "::ffff:10.0.0.1",
        "fd00::1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    ):
        assert address_refused(address), address


def test_pinned_target_keeps_host_for_header():
    checked = check_url("https://93.184.216.34:8443/a/b?c=1")
    assert checked.pinned and checked.url == "https://93.184.216.34:8443/a/b?c=1"
    assert checked.host_header == "93.184.216.34:8443"


def test_delete_own_only(auth_client, user):
    mine = services.webhook_endpoint_create(user=user, url=PUBLIC_URL, events=["balance.low"]).endpoint
    theirs = services.webhook_endpoint_create(
        user=UserFactory(), url=PUBLIC_URL, events=["balance.low"]
    ).endpoint
    response = auth_client.delete(f"{LIST}{theirs.pk}")
    assert response.status_code == 404 and response.json()["code"] == "webhook_not_found"
    assert auth_client.delete(f"{LIST}999999").status_code == 404
    assert auth_client.delete(f"{LIST}{mine.pk}").status_code == 204
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_anonymous_gets_401(api_client):
    assert api_client.get(LIST).status_code == 401
    assert api_client.post(LIST, {}, format="json").status_code == 401


def test_payment_callback_path_is_not_ours():
    try:
        match = resolve("/api/v1/webhooks/payment")
    except Resolver404:
        return
    assert match.url_name != "webhooks-detail"


# --- Delivery to a real receiver -------------------------------------------------------------


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_purchase_delivers_signed_event(
    user, local_endpoint, receiver, celery_eager, django_capture_on_commit_callbacks
):
    fund(user, "100")
    with django_capture_on_commit_callbacks(execute=True):
        issued = token_services.token_purchase(user=user, duration_hours=24)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.path == "/hook" and got.headers["content-type"] == "application/json"
    assert got.json["type"] == "token.purchased"
    assert got.json["data"]["token_id"] == issued.token.pk and got.json["data"]["cost"] == "18.00"
    assert issued.plaintext not in got.body.decode()
    assert receiver_verify(local_endpoint.secret, got.headers, got.body)
    # A forged signature (another secret) and a stale timestamp both fail the receiver's check.
    forged = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert not receiver_verify(forged, got.headers, got.body)
    stale_ts = int(time.time()) - 3600
    stale = signing.signature_headers(
        secret=local_endpoint.secret, msg_id=got.headers["webhook-id"], body=got.body, timestamp=stale_ts
    )
    assert not receiver_verify(local_endpoint.secret, stale, got.body)
    assert not receiver_verify(local_endpoint.secret, {**got.headers}, got.body + b" ")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert delivery.event_id == got.headers["webhook-id"] and delivery.last_status_code == 200
    assert delivery.delivered_at is not None
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.last_success_at is not None and endpoint.failing_since is None


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_only_subscribed_events_and_active_endpoints(
    user, receiver, celery_eager, django_capture_on_commit_callbacks
):
    services.webhook_endpoint_create(user=user, url=receiver.url, events=["token.revoked"])
    off = services.webhook_endpoint_create(user=user, url=receiver.url, events=["token.purchased"]).endpoint
    WebhookEndpoint.objects.filter(pk=off.pk).update(is_active=False)
    fund(user, "100")
    with django_capture_on_commit_callbacks(execute=True):
        issued = token_services.token_purchase(user=user, duration_hours=1)
    assert receiver.received == [] and WebhookDelivery.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        token_services.token_revoke(token_id=issued.token.pk, actor=user, owner=user)
    assert [r.json["type"] for r in receiver.received] == ["token.revoked"]
    assert receiver.received[0].json["data"]["refund_amount"] == "1.00"


def test_rolled_back_purchase_emits_nothing(
    user, local_endpoint, receiver, celery_eager, django_capture_on_commit_callbacks
):
    """The purchase succeeds (its delivery row is written), then an outer transaction rolls back."""
    from django.db import transaction

    class RolledBack(Exception):
        pass

    fund(user, "100")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RolledBack),
        transaction.atomic(),
    ):
        token_services.token_purchase(user=user, duration_hours=24)
        assert WebhookDelivery.objects.count() == 1
        raise RolledBack
    assert WebhookDelivery.objects.count() == 0
    assert receiver.received == []


def test_emit_rejects_unknown_event(user):
    with pytest.raises(ValueError):
        services.webhook_emit(user_id=user.pk, event="token.exploded", data={})


@override_settings(
    WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"],
    WEBHOOK_MAX_ATTEMPTS=5,
    WEBHOOK_RETRY_BASE_SECONDS=10,
    WEBHOOK_RETRY_MAX_SECONDS=3600,
)
def test_retries_on_500_with_backoff_then_succeeds(
    user, local_endpoint, receiver, celery_eager, django_capture_on_commit_callbacks
):
    receiver.statuses = [500, 503, 200]
    with django_capture_on_commit_callbacks(execute=True):
        ids = services.webhook_emit(user_id=user.pk, event="token.purchased", data={"n": 1})
    assert len(ids) == 1  # eager: the task retried in-process (countdowns recorded, not slept)
    delivery = WebhookDelivery.objects.get(pk=ids[0])
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 3
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert [a.succeeded for a in attempts] == [False, False, True]
    assert 10 <= attempts[0].retry_in_seconds <= 12 and 20 <= attempts[1].retry_in_seconds <= 24
    assert attempts[2].retry_in_seconds is None
    assert len(receiver.received) == 3
    # The same message id on every attempt; each attempt signed afresh and valid.
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert all(receiver_verify(local_endpoint.secret, r.headers, r.body) for r in receiver.received)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.failing_since is None and endpoint.consecutive_failures == 0


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"], WEBHOOK_MAX_ATTEMPTS=3)
def test_gives_up_after_max_attempts(
    user, local_endpoint, receiver, celery_eager, django_capture_on_commit_callbacks
):
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = services.webhook_emit(user_id=user.pk, event="token.purchased", data={})
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert delivery.last_status_code == 500 and '"status": 500' in delivery.last_response
    assert delivery.next_attempt_at is None and len(receiver.received) == 3
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.consecutive_failures == 3 and endpoint.failing_since is not None and endpoint.is_active
    # Running the task again does nothing: the delivery is final.
    deliver_webhook.apply(args=[delivery_id])
    assert len(receiver.received) == 3


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_retry_schedule_recorded_without_eager(user, local_endpoint, receiver):
    receiver.statuses = [500]
    with override_settings(WEBHOOK_MAX_ATTEMPTS=4, WEBHOOK_RETRY_BASE_SECONDS=30):
        delivery = WebhookDelivery.objects.create(
            endpoint=local_endpoint.endpoint, event="token.purchased", event_id="msg_x", payload={"type": "x"}
        )
        outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert outcome.status == DeliveryStatus.RETRYING and 30 <= outcome.retry_in <= 36
    assert delivery.status == DeliveryStatus.RETRYING
    assert timedelta(seconds=29) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=37)


def test_backoff_grows_exponentially_and_is_capped():
    with override_settings(WEBHOOK_RETRY_BASE_SECONDS=30, WEBHOOK_RETRY_MAX_SECONDS=600):
        waits = [services.backoff_seconds(n) for n in range(1, 9)]
    for n, wait in enumerate(waits, start=1):
        base = min(30 * 2 ** (n - 1), 600)
        assert base <= wait <= base * 1.2 + 1


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_delivery_is_claimed_once(user, local_endpoint, receiver):
    [delivery_id] = services.webhook_emit(user_id=user.pk, event="token.purchased", data={})
    first = services.webhook_delivery_attempt(delivery_id=delivery_id)
    second = services.webhook_delivery_attempt(delivery_id=delivery_id)
    assert first.status == second.status == DeliveryStatus.SUCCEEDED
    assert len(receiver.received) == 1 and WebhookAttempt.objects.count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://10.0.0.1:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_ssrf_refused_again_at_delivery(user, receiver, url):
    port = receiver.url.rsplit(":", 1)[1]
    target = url.format(port=port)
    allowed = ["127.0.0.1", "localhost", "::1", "10.0.0.1", "169.254.169.254"]
    with override_settings(WEBHOOK_ALLOWED_HOSTS=allowed):
        endpoint = services.webhook_endpoint_create(user=user, url=target, events=["balance.low"]).endpoint
    # The operator removed the exception (or DNS now points inside): the attempt is refused.
    with override_settings(WEBHOOK_ALLOWED_HOSTS=[], WEBHOOK_MAX_ATTEMPTS=2):
        [delivery_id] = services.webhook_emit(user_id=user.pk, event="balance.low", data={})
        outcome = services.webhook_delivery_attempt(delivery_id=delivery_id)
    assert outcome.status == DeliveryStatus.RETRYING
    attempt = WebhookAttempt.objects.get(delivery_id=delivery_id)
    assert attempt.error.startswith("refused:") and attempt.status_code is None
    assert receiver.received == []
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 1


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"], WEBHOOK_DISABLE_AFTER_DAYS=3)
def test_endpoint_failing_for_days_is_disabled(user, local_endpoint, receiver):
    receiver.statuses = [500]
    endpoint = local_endpoint.endpoint
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=2))
    [first] = services.webhook_emit(user_id=user.pk, event="token.purchased", data={})
    services.webhook_delivery_attempt(delivery_id=first)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).is_active
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=3, hours=1)
    )
    [second] = services.webhook_emit(user_id=user.pk, event="token.purchased", data={})
    services.webhook_delivery_attempt(delivery_id=second)
    endpoint.refresh_from_db()
    assert (
        not endpoint.is_active and endpoint.disabled_at is not None and "3 days" in endpoint.disabled_reason
    )
    assert AuditLog.objects.filter(action="webhook.disable", resource_id=str(endpoint.pk)).exists()
    # No new deliveries for a disabled endpoint; a pending one fails without a request.
    assert services.webhook_emit(user_id=user.pk, event="token.purchased", data={}) == []
    sent = len(receiver.received)
    assert services.webhook_delivery_attempt(delivery_id=first).status == DeliveryStatus.FAILED
    assert len(receiver.received) == sent


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_staff_replays_a_delivery_from_the_admin(
    user, local_endpoint, receiver, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = services.webhook_emit(user_id=user.pk, event="token.purchased", data={"x": 1})
    assert len(receiver.received) == 1
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_login(staff)
    url = "/admin/webhooks/webhookdelivery/"
    assert client.get(url).status_code == 200
    assert client.get(f"{url}{delivery_id}/change/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "replay", "_selected_action": [delivery_id]})
    assert response.status_code == 302
    assert len(receiver.received) == 2
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    replay = WebhookDelivery.objects.exclude(pk=delivery_id).get()
    assert replay.replay_of_id == delivery_id and replay.status == DeliveryStatus.SUCCEEDED
    assert AuditLog.objects.filter(action="webhook.replay", actor=staff).exists()


def test_plain_staff_without_permission_cannot_replay(user, local_endpoint):
    [delivery_id] = services.webhook_emit(user_id=user.pk, event="token.purchased", data={})
    staff = UserFactory(is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_webhookdelivery"))
    client = APIClient()
    client.force_login(staff)
    client.post("/admin/webhooks/webhookdelivery/", {"action": "replay", "_selected_action": [delivery_id]})
    assert WebhookDelivery.objects.count() == 1


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_lost_deliveries_are_queued_again(user, local_endpoint, receiver, celery_eager):
    from webhooks.tasks import requeue_overdue_deliveries

    endpoint = local_endpoint.endpoint

    def delivery(**fields):
        return WebhookDelivery.objects.create(
            endpoint=endpoint,
            event="token.purchased",
            event_id=f"msg_{uuid.uuid4().hex}",
            payload={"type": "x"},
            **fields,
        )

    lost = delivery()
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    late_retry = delivery(
        status=DeliveryStatus.RETRYING, next_attempt_at=timezone.now() - timedelta(minutes=6)
    )
    crashed = delivery(status=DeliveryStatus.SENDING, claimed_until=timezone.now() - timedelta(seconds=1))
    fresh = delivery()  # its task is probably still on its way
    future_retry = delivery(
        status=DeliveryStatus.RETRYING, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    assert requeue_overdue_deliveries.apply().get() == 3
    statuses = dict(WebhookDelivery.objects.values_list("pk", "status"))
    assert statuses[lost.pk] == statuses[late_retry.pk] == statuses[crashed.pk] == DeliveryStatus.SUCCEEDED
    assert (
        statuses[fresh.pk] == DeliveryStatus.PENDING and statuses[future_retry.pk] == DeliveryStatus.RETRYING
    )
    assert len(receiver.received) == 3
    assert requeue_overdue_deliveries.apply().get() == 0  # nothing left behind
    assert len(receiver.received) == 3


@pytest.mark.django_db(transaction=True)
@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_concurrent_attempts_send_once(requires_postgres, receiver):
    user = UserFactory()
    endpoint = services.webhook_endpoint_create(user=user, url=receiver.url, events=["balance.low"]).endpoint
    receiver.delay = 0.2  # keep the first attempt in flight while the others try
    # (Created directly: webhook_emit would also queue it on the real broker after commit.)
    delivery_id = WebhookDelivery.objects.create(
        endpoint=endpoint, event="balance.low", event_id="msg_race", payload={"type": "balance.low"}
    ).pk
    results = run_threads(4, lambda: services.webhook_delivery_attempt(delivery_id=delivery_id))
    assert [r for r in results if isinstance(r, Exception)] == []
    assert len(receiver.received) == 1
    assert WebhookAttempt.objects.filter(delivery_id=delivery_id).count() == 1
    assert WebhookDelivery.objects.get(pk=delivery_id).status == DeliveryStatus.SUCCEEDED


def test_admin_pages_and_reenabling_an_endpoint(user, client):
    endpoint = services.webhook_endpoint_create(user=user, url=PUBLIC_URL, events=["balance.low"]).endpoint
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False,
        disabled_at=timezone.now(),
        disabled_reason="Failing for 3 days.",
        failing_since=timezone.now() - timedelta(days=4),
        consecutive_failures=9,
    )
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    for url in (
        "/admin/webhooks/webhookendpoint/",
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/",
        "/admin/notifications/notification/",
        "/admin/django_celery_beat/periodictask/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"whsec_" not in response.content
    assert client.get("/admin/webhooks/webhookendpoint/add/").status_code == 403
    response = client.post(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/", {"is_active": "on"})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since is None and endpoint.consecutive_failures == 0
    assert endpoint.disabled_at is None and endpoint.disabled_reason == ""
    assert endpoint.url == PUBLIC_URL  # read-only fields are untouched
    # Through webhooks.services.webhook_endpoint_set_active: audited as a staff change.
    [entry] = AuditLog.objects.filter(action="admin.webhook_update")
    assert entry.actor == staff and entry.resource_id == str(endpoint.pk)
    assert entry.details["is_active"] is True and entry.details["owner_id"] == user.pk
