"""Payments (SPEC §7): create → checkout URL, provider callbacks credited exactly once, bad
signatures and unknown payments refused, the staff simulation, the mock checkout page, the
admin action, and the YooKassa adapter against a local stand-in of its API."""

import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.sites import site
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from notifications.models import Notification, NotificationKind
from payments.admin import PaymentAdmin
from payments.models import ExchangeRate, Payment, PaymentStatus
from payments.providers import SIGNATURE_HEADER, mock_signature
from payments.services import payment_callback_process
from tests.concurrency import run_threads
from tests.factories import DEFAULT_PASSWORD, UserFactory, staff_with
from tests.payments_support import CALLBACK, PURCHASE, callback_body, pay, post_callback, start_payment
from tests.test_ledger import assert_ledger_consistent
from tests.yookassa_standin import SECRET_KEY, SHOP_ID, YooKassaStandIn

pytestmark = pytest.mark.django_db


def deposits(user):
    return Transaction.objects.filter(user=user, type=TransactionType.DEPOSIT)


# --- create ---------------------------------------------------------------------------------------


def test_purchase_creates_a_pending_payment_with_a_checkout_url(auth_client, user):
    response = auth_client.post(PURCHASE, {"amount": "150.00"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    payment = Payment.objects.get(pk=body["payment_id"])
    assert body["status"] == "pending" and payment.status == PaymentStatus.PENDING
    assert body["checkout_url"] == payment.checkout_url
    assert f"/payments/mock/{payment.provider_payment_id}/" in body["checkout_url"]
    assert payment.user == user and payment.provider == "mock"
    assert (payment.amount, payment.currency, payment.original_amount) == (
        Decimal("150.00"),
        "ZNC",
        Decimal("150.00"),
    )
    assert payment.exchange_rate == Decimal("1")
    assert not Transaction.objects.filter(user=user).exists()
    assert AuditLog.objects.filter(action="payment.create", resource_id=str(payment.pk)).exists()


@pytest.mark.parametrize("amount", ["0", "0.99", "100000.01", "1.001", "-5", "abc", None])
def test_bad_amounts_are_400_and_create_nothing(auth_client, amount):
    response = auth_client.post(PURCHASE, {"amount": amount}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid", "invalid_amount")
    assert not Payment.objects.exists()


def test_limits_are_inclusive(auth_client):
    assert auth_client.post(PURCHASE, {"amount": "1"}, format="json").status_code == 201
    assert auth_client.post(PURCHASE, {"amount": "100000"}, format="json").status_code == 201


def test_purchase_needs_auth(api_client):
    assert api_client.post(PURCHASE, {"amount": "10"}, format="json").status_code == 401


def test_idempotency_key_creates_one_payment(auth_client):
    first = auth_client.post(PURCHASE, {"amount": "20"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = auth_client.post(PURCHASE, {"amount": "20"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1


@override_settings(MOCK_PAYMENTS_ENABLED=False)
def test_mock_provider_disabled_means_no_topups(auth_client):
    response = auth_client.post(PURCHASE, {"amount": "20"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "topups_unavailable"
    assert not Payment.objects.exists()


# --- callbacks ------------------------------------------------------------------------------------


def test_signed_callback_credits_once_however_often_it_arrives(api_client, user):
    payment = start_payment(user, "150.00")
    for _ in range(4):
        response = pay(api_client, payment.provider_payment_id)
        assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.completed_at is not None
    assert deposits(user).count() == 1
    assert payment.deposit == deposits(user).get()
    assert payment.deposit.reference == f"payment:{payment.pk}"
    user.refresh_from_db()
    assert user.balance == Decimal("150.00")
    assert_ledger_consistent(user)
    outcomes = list(
        AuditLog.objects.filter(action="payment.callback")
        .order_by("id")
        .values_list("details__outcome", flat=True)
    )
    assert outcomes == ["credited", "already_succeeded", "already_succeeded", "already_succeeded"]
    assert AuditLog.objects.filter(action="payment.succeeded").count() == 1


def test_callback_answer_says_what_happened(api_client, user):
    payment = start_payment(user, "10")
    first = pay(api_client, payment.provider_payment_id).json()
    again = pay(api_client, payment.provider_payment_id).json()
    assert first == {"payment_id": payment.pk, "status": "succeeded", "outcome": "credited"}
    assert again["outcome"] == "already_succeeded"


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, "garbage", "wrong-secret"],
)
def test_bad_signature_is_400_suspicious_and_credits_nothing(api_client, user, signature):
    payment = start_payment(user, "150.00")
    body = callback_body(payment.provider_payment_id)
    if signature == "wrong-secret":
        signature = mock_signature(body, secret="not-the-secret")
    response = post_callback(api_client, body, signature=signature)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING
    assert not Transaction.objects.filter(user=user).exists()
    entry = AuditLog.objects.get(action="payment.callback_rejected")
    assert entry.suspicious and entry.details["reason"] == "invalid_signature"


def test_tampered_body_with_old_signature_is_refused(api_client, user):
    payment = start_payment(user, "5")
    signature = mock_signature(callback_body(payment.provider_payment_id, "canceled"))
    response = post_callback(
        api_client, callback_body(payment.provider_payment_id, "succeeded"), signature=signature
    )
    assert response.status_code == 400
    assert not Transaction.objects.exists()


def test_unknown_payment_is_404_and_audited(api_client, user):
    response = pay(api_client, "mock_doesnotexist")
    assert response.status_code == 404 and response.json()["code"] == "payment_not_found"
    assert AuditLog.objects.get(action="payment.callback").details["outcome"] == "unknown_payment"
    assert not Transaction.objects.exists()


def test_malformed_callback_is_400(api_client):
    body = b'{"provider_payment_id": "mock_x", "status": "refunded"}'
    assert post_callback(api_client, body).status_code == 400
    assert post_callback(api_client, b"not json").status_code == 400


def test_cancel_callback_then_success_credits_nothing(api_client, user):
    payment = start_payment(user, "50")
    assert pay(api_client, payment.provider_payment_id, "canceled").json()["outcome"] == "canceled"
    assert pay(api_client, payment.provider_payment_id, "succeeded").json()["outcome"] == "already_canceled"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    assert not Transaction.objects.filter(user=user).exists()


def test_callback_is_not_throttled(api_client, user, settings):
    settings.API_RATE_LIMIT_FREE = 1
    payment = start_payment(user, "10")
    for _ in range(3):
        assert pay(api_client, payment.provider_payment_id).status_code == 200


def test_success_sends_email_and_webhook_after_commit(user, django_capture_on_commit_callbacks, settings):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook_endpoint_create(user=user, url="http://127.0.0.1:9/hook", events=["payment.succeeded"])
    payment = start_payment(user, "42.50")
    with django_capture_on_commit_callbacks(execute=True):
        payment_callback_process(
            provider="mock",
            body=callback_body(payment.provider_payment_id),
            headers={SIGNATURE_HEADER: mock_signature(callback_body(payment.provider_payment_id))},
        )
    note = Notification.objects.get(user=user, kind=NotificationKind.PAYMENT_RECEIVED)
    assert note.context["amount"] == "42.50"
    delivery = WebhookDelivery.objects.get(event="payment.succeeded")
    assert delivery.payload["data"]["payment_id"] == payment.pk
    assert delivery.payload["data"]["amount"] == "42.50"


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_callbacks_credit_once(requires_postgres):
    user = UserFactory()
    payment = start_payment(user, "250.00")
    body = callback_body(payment.provider_payment_id)
    headers = {SIGNATURE_HEADER: mock_signature(body)}
    results = run_threads(8, lambda: payment_callback_process(provider="mock", body=body, headers=headers)[1])
    assert sorted(results) == ["already_succeeded"] * 7 + ["credited"]
    assert deposits(user).count() == 1
    assert_ledger_consistent(user)
    assert user.balance == Decimal("250.00")


@pytest.mark.django_db(transaction=True)
def test_concurrent_http_callbacks_credit_once(requires_postgres):
    user = UserFactory()
    payment = start_payment(user, "99.99")
    results = run_threads(6, lambda: pay(APIClient(), payment.provider_payment_id).status_code)
    assert results == [200] * 6
    assert deposits(user).count() == 1
    assert_ledger_consistent(user)


# --- staff simulation ------------------------------------------------------------------------------


def simulate(client, payment_id):
    return client.post(f"/api/v1/currency/admin/simulate-payment/{payment_id}")


def test_staff_simulates_a_pending_mock_payment_once(user):
    staff = staff_with("payments.complete_payment")
    client = APIClient()
    client.force_authenticate(staff)
    payment = start_payment(user, "30")
    response = simulate(client, payment.pk)
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
    again = simulate(client, payment.pk)
    assert again.status_code == 409 and again.json()["code"] == "payment_not_pending"
    assert deposits(user).count() == 1
    assert AuditLog.objects.get(action="payment.succeeded").actor == staff
    assert simulate(client, 999999).status_code == 404


def test_simulation_is_staff_only(auth_client, user):
    payment = start_payment(user, "30")
    assert simulate(auth_client, payment.pk).status_code == 403
    assert simulate(APIClient(), payment.pk).status_code == 401
    assert not Transaction.objects.exists()


# --- the mock checkout page and the top-up page ----------------------------------------------------


def page_client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    return client


def page_nonce(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)


def topup_nonce(client) -> str:
    return page_nonce(client.get(reverse("currency:topup")))


def test_topup_page_creates_a_payment_and_pay_credits_once(user):
    client = page_client(user)
    response = client.post(reverse("currency:topup"), {"amount": "120.00", "nonce": topup_nonce(client)})
    assert response.status_code == 200
    payment = Payment.objects.get(user=user)
    assert payment.provider_payment_id in response.content.decode()
    form = {"checkout_id": payment.provider_payment_id, "action": "pay", "nonce": page_nonce(response)}
    first = client.post(reverse("currency:mock-checkout"), form)
    assert first.status_code == 302 and first.url == reverse("accounts:dashboard")
    second = client.post(reverse("currency:mock-checkout"), form)
    assert second.status_code == 200 and 'data-testid="already-made"' in second.content.decode()
    assert deposits(user).count() == 1
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert AuditLog.objects.filter(action="payment.callback", details__via="checkout_page").count() == 1


def test_checkout_url_page_and_cancel(user):
    client = page_client(user)
    payment = start_payment(user, "75")
    page = client.get(urlsplit(payment.checkout_url).path)
    assert page.status_code == 200 and "75" in page.content.decode()
    client.post(
        reverse("currency:mock-checkout"),
        {"checkout_id": payment.provider_payment_id, "action": "cancel", "nonce": page_nonce(page)},
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    assert not Transaction.objects.exists()
    # A finished checkout's page sends the customer back to the top-up form.
    assert (
        client.get(reverse("payments:mock-checkout", args=[payment.provider_payment_id])).status_code == 302
    )


def test_someone_elses_checkout_is_not_found(user):
    payment = start_payment(user, "75")
    other = page_client(UserFactory())
    assert other.get(reverse("payments:mock-checkout", args=[payment.provider_payment_id])).status_code == 404
    other.post(
        reverse("currency:mock-checkout"), {"checkout_id": payment.provider_payment_id, "action": "pay"}
    )
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING and not Transaction.objects.exists()


# --- admin ---------------------------------------------------------------------------------------


def test_admin_action_marks_pending_mock_payments_succeeded_once(rf, user):
    from django.contrib.messages.storage.fallback import FallbackStorage

    staff = UserFactory(is_staff=True, is_superuser=True)
    pending = start_payment(user, "10")
    done = start_payment(user, "20")
    pay(APIClient(), done.provider_payment_id)
    request = rf.post("/admin/payments/payment/")
    request.user = staff
    request.session = {}
    request._messages = FallbackStorage(request)
    admin = PaymentAdmin(Payment, site)
    admin.mark_succeeded_mock(request, Payment.objects.all())
    admin.mark_succeeded_mock(request, Payment.objects.all())
    pending.refresh_from_db()
    assert pending.status == PaymentStatus.SUCCEEDED
    assert deposits(user).count() == 2
    assert_ledger_consistent(user)
    assert not admin.has_add_permission(request) and not admin.has_delete_permission(request)
    assert "amount" in admin.get_readonly_fields(request, pending)


# --- YooKassa adapter against its local stand-in ---------------------------------------------------


@pytest.fixture
def yookassa(settings):
    standin = YooKassaStandIn().start()
    settings.PAYMENT_PROVIDER = "yookassa"
    settings.YOOKASSA_API_URL = standin.base_url
    settings.YOOKASSA_SHOP_ID = SHOP_ID
    settings.YOOKASSA_SECRET_KEY = SECRET_KEY
    settings.YOOKASSA_CURRENCY = "RUB"
    yield standin
    standin.stop()


@pytest.fixture
def rub_rate(db):
    from django.utils import timezone

    return ExchangeRate.objects.create(currency="RUB", rate=Decimal("1.25"), valid_from=timezone.now())


def notify(client, provider_payment_id, event="payment.succeeded"):
    import json

    body = json.dumps({"type": "notification", "event": event, "object": {"id": provider_payment_id}})
    return client.generic("POST", CALLBACK + "?provider=yookassa", body, content_type="application/json")


def test_yookassa_create_sends_idempotence_key_basic_auth_and_redirect(auth_client, user, yookassa, rub_rate):
    response = auth_client.post(PURCHASE, {"amount": "100.00"}, format="json")
    assert response.status_code == 201, response.content
    payment = Payment.objects.get()
    sent = yookassa.requests[-1]
    assert sent["method"] == "POST" and sent["key"] == str(payment.uid)
    assert sent["body"]["amount"] == {"value": "80.00", "currency": "RUB"}  # 100 ZNC at 1.25 ZNC/RUB
    assert sent["body"]["confirmation"]["type"] == "redirect" and sent["body"]["capture"] is True
    assert payment.provider == "yookassa" and payment.provider_payment_id in yookassa.payments
    assert response.json()["checkout_url"].startswith("https://yoomoney.example/checkout")
    assert (payment.amount, payment.currency, payment.original_amount, payment.exchange_rate) == (
        Decimal("100.00"),
        "RUB",
        Decimal("80.00"),
        Decimal("1.25"),
    )


def test_yookassa_rub_top_up_is_charged_in_rub(auth_client, yookassa, rub_rate):
    assert (
        auth_client.post(PURCHASE, {"amount": "99.99", "currency": "RUB"}, format="json").status_code == 201
    )
    payment = Payment.objects.get()
    assert yookassa.requests[-1]["body"]["amount"] == {"value": "99.99", "currency": "RUB"}
    assert payment.amount == Decimal("124.99")  # 99.99 × 1.25 = 124.9875 → 124.99


def test_yookassa_notification_is_verified_with_the_api_and_credited_once(
    api_client, user, yookassa, rub_rate
):
    payment = start_payment(user, "200")
    # A notification claiming success while YooKassa says "pending" credits nothing.
    first = notify(api_client, payment.provider_payment_id)
    assert first.status_code == 200 and first.json()["outcome"] == "pending"
    assert not Transaction.objects.filter(user=user).exists()
    yookassa.set_status(payment.provider_payment_id, "succeeded")
    for _ in range(3):
        assert notify(api_client, payment.provider_payment_id).status_code == 200
    assert deposits(user).count() == 1
    user.refresh_from_db()
    assert user.balance == Decimal("200.00")
    assert_ledger_consistent(user)
    gets = [r for r in yookassa.requests if r["method"] == "GET"]
    assert len(gets) == 4  # every notification was checked against the API


def test_yookassa_unknown_or_forged_payment_ids(api_client, yookassa, rub_rate):
    response = notify(api_client, "00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404  # not one of ours: YooKassa is not even asked
    assert not Transaction.objects.exists() and yookassa.requests == []
    assert AuditLog.objects.get(action="payment.callback").details["outcome"] == "unknown_payment"


def test_yookassa_amount_mismatch_is_refused_and_suspicious(api_client, user, yookassa, rub_rate):
    payment = start_payment(user, "100")
    yookassa.set_status(payment.provider_payment_id, "succeeded", amount="1.00")
    response = notify(api_client, payment.provider_payment_id)
    assert response.status_code == 400 and response.json()["code"] == "amount_mismatch"
    assert not Transaction.objects.exists()
    assert AuditLog.objects.get(action="payment.amount_mismatch").suspicious


def test_yookassa_canceled_payment(api_client, user, yookassa, rub_rate):
    payment = start_payment(user, "100")
    yookassa.set_status(payment.provider_payment_id, "canceled")
    assert notify(api_client, payment.provider_payment_id, "payment.canceled").json()["outcome"] == "canceled"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED and not Transaction.objects.exists()


def test_yookassa_status_poll_credits_once(auth_client, user, yookassa, rub_rate):
    payment = start_payment(user, "100")
    yookassa.set_status(payment.provider_payment_id, "succeeded")
    for _ in range(2):
        body = auth_client.get(f"/api/v1/currency/payments/{payment.pk}").json()
        assert body["status"] == "succeeded"
    assert deposits(user).count() == 1


def test_yookassa_down_is_502_and_credits_nothing(auth_client, user, settings, rub_rate):
    """Issue 15: the pending payment is committed before the provider call, so a provider error
    leaves it behind in a clear state: without an Idempotency-Key nothing can resume it, so it is
    canceled (audited with source provider_error) and nothing is credited."""
    settings.PAYMENT_PROVIDER = "yookassa"
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = SHOP_ID, SECRET_KEY
    settings.YOOKASSA_API_URL = "http://127.0.0.1:9/v3"  # nothing listens there
    response = auth_client.post(PURCHASE, {"amount": "100"}, format="json")
    assert response.status_code == 502 and response.json()["code"] == "payment_provider_error"
    payment = Payment.objects.get()
    assert payment.status == PaymentStatus.CANCELED and payment.provider_payment_id == ""
    assert payment.checkout_url == "" and not Transaction.objects.exists()
    assert AuditLog.objects.get(action="payment.canceled").details["source"] == "provider_error"
    assert not AuditLog.objects.filter(action="payment.create").exists()
    user.refresh_from_db()
    assert user.balance == 0


def test_yookassa_wrong_credentials_are_a_provider_error(auth_client, yookassa, rub_rate, settings):
    settings.YOOKASSA_SECRET_KEY = "wrong"
    assert auth_client.post(PURCHASE, {"amount": "100"}, format="json").status_code == 502
    assert not Payment.objects.exclude(status=PaymentStatus.CANCELED).exists()
    assert not Transaction.objects.exists()


def test_yookassa_unconfigured_means_no_topups(auth_client, settings):
    settings.PAYMENT_PROVIDER = "yookassa"
    settings.YOOKASSA_SHOP_ID = settings.YOOKASSA_SECRET_KEY = ""
    assert auth_client.post(PURCHASE, {"amount": "100"}, format="json").status_code == 503


# --- the emails of payments, referrals and auto-renewal render in both languages --------------------


@pytest.mark.parametrize("language", ["ru", "en"])
def test_emails_render_with_the_context_the_services_give(language):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.services import email_render
    from payments.deposits import deposit_mock
    from renewals.services import tokens_renew_due
    from tests.factories import fund
    from tokens import services as token_services

    referrer = UserFactory(language=language)
    referred = UserFactory(referred_by=referrer, language=language)
    payment = start_payment(referred, "150")
    pay(APIClient(), payment.provider_payment_id)
    deposit_mock(user=referrer, amount=Decimal("100"))
    for user, balance in ((referrer, None), (UserFactory(language=language), "20")):
        if balance:
            fund(user, balance)
        token = token_services.token_purchase(user=user, duration_hours=24, auto_renew=True).token
        token_services.token_activate(token=token, now=timezone.now() - timedelta(hours=23, minutes=30))
    tokens_renew_due()
    kinds = {
        NotificationKind.PAYMENT_RECEIVED: "150.00",
        NotificationKind.REFERRAL_BONUS: "15.00",
        NotificationKind.AUTO_RENEW_DONE: "18.00",
        NotificationKind.AUTO_RENEW_FAILED: "18.00",
    }
    for kind, expected in kinds.items():
        note = Notification.objects.get(kind=kind)
        subject, text, html = email_render(
            template=kind, language=note.language, context={"username": note.user.username, **note.context}
        )
        if note.language == "ru":  # amounts in the reader's locale: 150,00
            expected = expected.replace(".", ",")
        assert subject and expected in text and expected in html, (kind, text)
        assert note.user.username in text


@override_settings(MOCK_PAYMENTS_ENABLED=False)
def test_mock_callbacks_follow_the_switch(api_client, user):
    payment = Payment.objects.create(
        user=user,
        provider="mock",
        provider_payment_id="mock_old",
        amount=Decimal("10"),
        original_amount=Decimal("10"),
    )
    response = pay(api_client, payment.provider_payment_id)
    assert response.status_code == 404 and response.json()["code"] == "mock_payments_disabled"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING and not Transaction.objects.exists()


def test_yookassa_return_page_checks_the_status_at_once(user, yookassa, rub_rate):
    payment = start_payment(user, "100")
    sent = yookassa.requests[-1]["body"]["confirmation"]["return_url"]
    assert sent.endswith(f"/payments/return/{payment.uid}/")
    client = page_client(user)
    pending = client.get(urlsplit(sent).path)
    assert pending.status_code == 302 and pending.url == reverse("currency:topup")
    yookassa.set_status(payment.provider_payment_id, "succeeded")
    done = client.get(urlsplit(sent).path)
    assert done.status_code == 302 and done.url == reverse("accounts:dashboard")
    assert deposits(user).count() == 1
    assert page_client(UserFactory()).get(urlsplit(sent).path).status_code == 404


def test_payment_list(auth_client, user):
    start_payment(user, "10")
    start_payment(UserFactory(), "20")
    body = auth_client.get("/api/v1/currency/payments").json()
    assert body["count"] == 1 and body["results"][0]["amount"] == "10.00"


def test_admin_pages_render(client):
    from django.utils import timezone

    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    payment = start_payment(admin_user, "10")
    rate = ExchangeRate.objects.create(currency="EUR", rate=Decimal("100"), valid_from=timezone.now())
    for url in (
        "/admin/payments/payment/",
        f"/admin/payments/payment/{payment.pk}/change/",
        "/admin/payments/exchangerate/",
        "/admin/payments/exchangerate/add/",
        f"/admin/payments/exchangerate/{rate.pk}/change/",
        "/admin/referrals/referralbonus/",
        "/admin/renewals/tokenrenewal/",
        "/admin/gifts/giftcode/",
    ):
        assert client.get(url).status_code == 200, url
    response = client.post(
        "/admin/payments/exchangerate/add/",
        {"currency": "USD", "rate": "91.5", "valid_from_0": "2026-01-01", "valid_from_1": "00:00:00"},
    )
    assert response.status_code == 302, response.content[:2000]
    created = ExchangeRate.objects.get(currency="USD")
    assert created.created_by == admin_user
    assert AuditLog.objects.filter(action="exchange_rate.create", resource_id=str(created.pk)).exists()


def test_topup_page_redirects_to_yookassa_checkout(user, yookassa, rub_rate):
    client = page_client(user)
    response = client.post(reverse("currency:topup"), {"amount": "100.00", "nonce": topup_nonce(client)})
    payment = Payment.objects.get(user=user)
    assert response.status_code == 302 and response.url == payment.checkout_url
    assert payment.provider == "yookassa" and payment.status == PaymentStatus.PENDING


def test_payment_admin_cannot_save_a_payment_row(client):
    """A Save on the change page would write back a stale status/deposit (undoing a completion that
    raced with it): the page is read-only and a POST changes nothing."""
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    payment = start_payment(admin_user, "10")
    assert client.get(f"/admin/payments/payment/{payment.pk}/change/").status_code == 200
    response = client.post(f"/admin/payments/payment/{payment.pk}/change/", {"status": "succeeded"})
    assert response.status_code == 403
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_the_ledger_imports_no_payment_code():
    """Issue 15: `payments` owns top-up; `currency` (the ledger) imports nothing of it, not even
    lazily inside a function."""
    import ast
    from pathlib import Path

    offenders = []
    for path in (Path(__file__).resolve().parent.parent / "currency").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n == "payments" or n.startswith("payments.")]
    assert offenders == []


# --- payment_create: the provider call outside any transaction (issue 15) --------------------------


def provider_spy(monkeypatch, *, crash=None):
    """Wrap the real YooKassa adapter's create (which still talks to the stand-in): record whether
    a database transaction was open on this thread when the provider was called."""
    from django.db import transaction

    from payments.providers import YooKassaProvider

    calls: list[bool] = []
    real = YooKassaProvider.create_payment

    def create_payment(self, payment):
        calls.append(transaction.get_connection().in_atomic_block)
        if crash is not None:
            raise crash
        return real(self, payment)

    monkeypatch.setattr(YooKassaProvider, "create_payment", create_payment)
    return calls


def keyed(client, key, amount="100.00"):
    return client.post(PURCHASE, {"amount": amount}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def provider_creates(standin) -> list[dict]:
    return [r for r in standin.requests if r["method"] == "POST"]


@pytest.mark.django_db(transaction=True)
def test_the_provider_is_called_outside_any_transaction(yookassa, rub_rate, monkeypatch):
    calls = provider_spy(monkeypatch)
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    assert client.post(PURCHASE, {"amount": "100"}, format="json").status_code == 201
    assert keyed(client, "k-outside").status_code == 201
    page = page_client(user)
    response = page.post(reverse("currency:topup"), {"amount": "50.00", "nonce": topup_nonce(page)})
    assert response.status_code == 302 and response.url.startswith("https://yoomoney.example/")
    assert calls == [False, False, False]  # API without a key, with a key, the top-up page
    assert Payment.objects.filter(user=user).exclude(provider_payment_id="").count() == 3


@pytest.mark.django_db(transaction=True)
def test_same_key_twice_is_one_provider_payment(yookassa, rub_rate):
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    first, second = keyed(client, "k-twice"), keyed(client, "k-twice")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and second.json() == first.json()
    payment = Payment.objects.get()
    assert [r["key"] for r in provider_creates(yookassa)] == [str(payment.uid)]


@pytest.mark.django_db(transaction=True)
def test_a_provider_error_with_a_key_leaves_a_pending_payment_the_retry_resumes(yookassa, rub_rate, settings):
    from idempotency.models import IdempotencyRecord

    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    standin_url, settings.YOOKASSA_API_URL = settings.YOOKASSA_API_URL, "http://127.0.0.1:9/v3"
    failed = keyed(client, "k-resume")
    assert failed.status_code == 502 and failed.json()["code"] == "payment_provider_error"
    payment = Payment.objects.get()
    assert (payment.status, payment.provider_payment_id, payment.checkout_url) == (
        PaymentStatus.PENDING,
        "",
        "",
    )
    assert not Transaction.objects.exists()
    assert AuditLog.objects.get(action="payment.provider_error").details["outcome"] == "pending_resumable"
    record = IdempotencyRecord.objects.get(key="k-resume")
    assert record.response_status is None and record.response_body == {"payment": payment.pk}

    settings.YOOKASSA_API_URL = standin_url  # the provider is back: the same key resumes
    retried = keyed(client, "k-resume")
    assert retried.status_code == 201 and retried.json()["payment_id"] == payment.pk
    payment.refresh_from_db()
    assert payment.provider_payment_id in yookassa.payments and Payment.objects.count() == 1
    assert [r["key"] for r in provider_creates(yookassa)] == [str(payment.uid)]
    assert keyed(client, "k-resume")["Idempotent-Replayed"] == "true"


class Crash(BaseException):
    """The process dies (no `except Exception` runs)."""


@pytest.mark.django_db(transaction=True)
def test_a_crash_after_the_pending_commit_leaves_a_recoverable_payment(yookassa, rub_rate, monkeypatch):
    from django.utils import timezone

    from idempotency.models import IdempotencyRecord

    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    calls = provider_spy(monkeypatch, crash=Crash())
    with pytest.raises(Crash):
        keyed(client, "k-crash")
    assert calls == [False]
    payment = Payment.objects.get()  # committed before the provider call: pending, recoverable
    assert payment.status == PaymentStatus.PENDING and payment.provider_payment_id == ""
    record = IdempotencyRecord.objects.get(key="k-crash")
    assert record.response_status is None and record.response_body == {"payment": payment.pk}
    monkeypatch.undo()

    # While the crashed call's claim lasts, the same key is "in progress" (nothing created).
    busy = keyed(client, "k-crash")
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_progress"
    # Once its lease ran out, the retry takes the claim over and resumes the same payment.
    IdempotencyRecord.objects.filter(pk=record.pk).update(claimed_until=timezone.now())
    resumed = keyed(client, "k-crash")
    assert resumed.status_code == 201 and resumed.json()["payment_id"] == payment.pk
    assert Payment.objects.count() == 1
    assert [r["key"] for r in provider_creates(yookassa)] == [str(payment.uid)]
    assert not Transaction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_same_key_purchases_make_one_provider_payment(requires_postgres, yookassa, rub_rate):
    user = UserFactory()

    def call():
        client = APIClient()
        client.force_authenticate(user)
        return keyed(client, "k-race").status_code

    statuses = run_threads(6, call)
    assert 201 in statuses and set(statuses) <= {201, 409}
    assert Payment.objects.count() == 1 and len(provider_creates(yookassa)) == 1


def test_mock_provider_create_is_idempotent_by_the_payment_uid(user):
    from payments.providers import get_provider

    payment = start_payment(user, "10")
    again = get_provider("mock").create_payment(payment)
    assert again.provider_payment_id == payment.provider_payment_id == f"mock_{payment.uid.hex}"


@pytest.mark.django_db(transaction=True)
def test_topup_page_provider_error_then_the_same_form_resumes_the_payment(yookassa, rub_rate, settings):
    user = UserFactory()
    client = page_client(user)
    form = {"amount": "60.00", "nonce": topup_nonce(client)}
    standin_url, settings.YOOKASSA_API_URL = settings.YOOKASSA_API_URL, "http://127.0.0.1:9/v3"
    failed = client.post(reverse("currency:topup"), form)
    assert failed.status_code == 502
    assert "Платёжная система недоступна. Ничего не списано" in failed.content.decode()  # the user's language
    payment = Payment.objects.get()
    assert payment.status == PaymentStatus.PENDING and payment.provider_payment_id == ""
    settings.YOOKASSA_API_URL = standin_url
    resent = client.post(reverse("currency:topup"), form)
    assert resent.status_code == 302 and resent.url.startswith("https://yoomoney.example/")
    payment.refresh_from_db()
    assert Payment.objects.count() == 1 and payment.checkout_url == resent.url
    assert [r["key"] for r in provider_creates(yookassa)] == [str(payment.uid)]
    assert not Transaction.objects.exists()
