"""Payment callbacks under attack (issue 11 item 7): the YooKassa callback validates the id
before anything and calls YooKassa only for a local payment of that provider while it is
configured; the endpoint is rate-limited per IP; forged callbacks are audited at most once per
IP and minute and every one is counted."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from audit.models import AuditLog
from currency.models import Transaction
from payments.models import Payment, PaymentStatus
from tests.payments_support import CALLBACK, post_callback, start_payment
from tests.yookassa_standin import SECRET_KEY, SHOP_ID, YooKassaStandIn

pytestmark = pytest.mark.django_db


@pytest.fixture
def standin():
    server = YooKassaStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def yookassa(settings, standin):
    settings.YOOKASSA_API_URL = standin.base_url
    settings.YOOKASSA_SHOP_ID = SHOP_ID
    settings.YOOKASSA_SECRET_KEY = SECRET_KEY
    settings.YOOKASSA_CURRENCY = "RUB"
    return standin


def notify(client, payment_id, ip="10.7.0.1"):
    body = json.dumps({"type": "notification", "event": "payment.succeeded", "object": {"id": payment_id}})
    return client.generic(
        "POST", CALLBACK + "?provider=yookassa", body, content_type="application/json", REMOTE_ADDR=ip
    )


def rejected(provider: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "payment_callbacks_rejected_total", {"provider": provider, "reason": reason}
    )
    return value or 0.0


def test_yookassa_not_configured_is_404_and_never_calls_out(api_client, settings, standin):
    settings.YOOKASSA_API_URL = standin.base_url  # reachable, but no credentials: not configured
    settings.YOOKASSA_SHOP_ID = ""
    settings.YOOKASSA_SECRET_KEY = ""
    response = notify(api_client, "2f7c3a9e-000f-5000-8000-1a2b3c4d5e6f")
    assert response.status_code == 404 and response.json()["code"] == "provider_not_configured"
    assert standin.requests == []
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    "bad_id",
    [
        "../../me",
        "2f7c3a9e-000f-5000-8000-1a2b3c4d5e6f/../../x",
        "2f7c3a9e-000f-5000-8000-1a2b3c4d5e6f?x=1",
        "2f7c3a9e-000f-5000-8000-1a2b3c4d5e6f\n",
        "2f7c3a9e-000f-5000-8000-1a2b3c4d5e6g",
        "x" * 36,
        "%2e%2e%2f",
        "",
        12345,
    ],
)
def test_yookassa_malformed_id_is_400_and_never_calls_out(api_client, yookassa, bad_id):
    response = notify(api_client, bad_id)
    assert response.status_code == 400 and response.json()["code"] == "invalid_callback"
    assert yookassa.requests == []


def test_yookassa_unknown_local_payment_is_404_and_never_calls_out(api_client, yookassa, user, settings):
    settings.MOCK_PAYMENTS_ENABLED = True
    mock_payment = start_payment(user, "10")  # a payment of another provider does not count
    for payment_id in ("2f7c3a9e-000f-5000-8000-1a2b3c4d5e6f", mock_payment.provider_payment_id):
        response = notify(api_client, payment_id)
        assert response.status_code in (400, 404)
    assert yookassa.requests == []
    mock_payment.refresh_from_db()
    assert mock_payment.status == PaymentStatus.PENDING and not Transaction.objects.exists()


def test_yookassa_known_payment_is_checked_with_the_api(api_client, yookassa, user, settings):
    from django.utils import timezone

    from payments.models import ExchangeRate

    ExchangeRate.objects.create(currency="RUB", rate="1.25", valid_from=timezone.now())
    settings.PAYMENT_PROVIDER = "yookassa"
    payment = start_payment(user, "100")
    yookassa.set_status(payment.provider_payment_id, "succeeded")
    before = len(yookassa.requests)
    assert notify(api_client, payment.provider_payment_id).json()["outcome"] == "credited"
    assert [r["method"] for r in yookassa.requests[before:]] == ["GET"]


def test_callbacks_are_rate_limited_per_ip(api_client, user, settings):
    settings.PAYMENT_CALLBACK_RATE_LIMIT = "3/m"
    payment = start_payment(user, "10")
    body = json.dumps({"provider_payment_id": payment.provider_payment_id, "status": "canceled"}).encode()
    before = REGISTRY.get_sample_value("rate_limit_hits_total", {"scope": "payment_callback"}) or 0.0
    answers = [
        post_callback(api_client, body, signature="sha256=00", REMOTE_ADDR="10.7.0.2") for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    limited = post_callback(api_client, body, REMOTE_ADDR="10.7.0.2")  # even a valid one, now
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING
    assert REGISTRY.get_sample_value("rate_limit_hits_total", {"scope": "payment_callback"}) == before + 1
    # Another address is not affected.
    assert post_callback(api_client, body, REMOTE_ADDR="10.7.0.3").status_code == 200


def test_forged_callbacks_are_audited_once_per_ip_and_minute_and_all_counted(api_client, user):
    payment = start_payment(user, "10")
    body = json.dumps({"provider_payment_id": payment.provider_payment_id, "status": "succeeded"}).encode()
    before = rejected("mock", "invalid_signature")
    for _ in range(20):
        response = post_callback(api_client, body, signature="sha256=" + "0" * 64, REMOTE_ADDR="10.7.0.4")
        assert response.status_code == 400
    assert rejected("mock", "invalid_signature") == before + 20
    rows = AuditLog.objects.filter(action="payment.callback_rejected")
    assert rows.count() == 1 and rows.get().suspicious and rows.get().ip == "10.7.0.4"
    post_callback(api_client, body, signature="sha256=" + "0" * 64, REMOTE_ADDR="10.7.0.5")
    assert rows.count() == 2  # another address gets its own entry
    assert not Transaction.objects.exists()
    assert Payment.objects.get().status == PaymentStatus.PENDING


def test_unknown_payment_callbacks_are_audited_once_per_minute(api_client):
    from tests.payments_support import pay

    before = rejected("mock", "unknown_payment")
    for n in range(5):
        assert pay(api_client, f"mock_nope{n}").status_code == 404
    assert rejected("mock", "unknown_payment") == before + 5
    assert AuditLog.objects.filter(action="payment.callback", details__outcome="unknown_payment").count() == 1
