"""Multi-currency top-ups: staff-maintained rates, Decimal conversion (half-up to 0.01), the rate
recorded on the Payment, ZNC limits after conversion."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.utils import timezone

from currency.models import Transaction
from payments.admin import ExchangeRateAdmin
from payments.exchange import convert_from_znc, convert_to_znc, rate_current
from payments.models import ExchangeRate, Payment
from tests.payments_support import PURCHASE, pay
from tests.test_ledger import assert_ledger_consistent
from zenzefi.errors import InvalidInput

pytestmark = pytest.mark.django_db


def rate(currency, value, *, ago=timedelta(minutes=1)):
    return ExchangeRate.objects.create(
        currency=currency, rate=Decimal(value), valid_from=timezone.now() - ago
    )


@pytest.mark.parametrize(
    "currency,rate_value,amount,expected",
    [
        ("RUB", "1.25", "80.00", "100.00"),
        ("RUB", "0.0123456", "999.99", "12.35"),  # 12.345476… → 12.35
        ("USD", "92.345", "10.01", "924.37"),  # 924.37345 → 924.37
        ("EUR", "0.125", "0.10", "0.01"),  # 0.0125 → 0.01
        ("EUR", "0.125", "0.20", "0.03"),  # 0.025 → 0.03 (half-up, not banker's)
        ("USD", "1.005", "1.00", "1.01"),  # 1.005 → 1.01
    ],
)
def test_conversion_is_decimal_half_up(currency, rate_value, amount, expected):
    rate(currency, rate_value)
    conversion = convert_to_znc(amount=Decimal(amount), currency=currency)
    assert conversion.znc_amount == Decimal(expected)
    assert conversion.rate == Decimal(rate_value) and conversion.original_amount == Decimal(amount)


def test_znc_converts_one_to_one_and_floats_are_refused():
    assert convert_to_znc(amount=Decimal("12.34"), currency="ZNC").znc_amount == Decimal("12.34")
    with pytest.raises(TypeError):
        convert_to_znc(amount=12.34, currency="ZNC")


def test_latest_started_rate_wins_and_future_rates_wait():
    rate("USD", "90", ago=timedelta(days=2))
    rate("USD", "95", ago=timedelta(hours=1))
    ExchangeRate.objects.create(
        currency="USD", rate=Decimal("200"), valid_from=timezone.now() + timedelta(hours=1)
    )
    assert rate_current("USD").rate == Decimal("95")


def test_missing_rate_and_unknown_currency_are_400():
    with pytest.raises(InvalidInput) as exc:
        convert_to_znc(amount=Decimal("10"), currency="EUR")
    assert exc.value.code == "no_exchange_rate"
    with pytest.raises(InvalidInput) as exc:
        convert_to_znc(amount=Decimal("10"), currency="GBP")
    assert exc.value.code == "invalid_currency"


def test_converting_from_znc_rounds_half_up():
    rate("RUB", "1.5")
    conversion = convert_from_znc(znc_amount=Decimal("100.00"), currency="RUB")
    assert conversion.original_amount == Decimal("66.67")  # 66.666… → 66.67


def test_purchase_in_usd_records_the_rate_and_credits_znc(auth_client, api_client, user):
    rate("USD", "92.345")
    response = auth_client.post(PURCHASE, {"amount": "10.01", "currency": "usd"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["currency"], body["original_amount"], body["amount"], body["exchange_rate"]) == (
        "USD",
        "10.01",
        "924.37",
        "92.34500000",
    )
    payment = Payment.objects.get()
    # A later rate change does not change what this payment credits.
    rate("USD", "1", ago=timedelta(seconds=0))
    pay(api_client, payment.provider_payment_id)
    user.refresh_from_db()
    assert user.balance == Decimal("924.37")
    deposit = Transaction.objects.get(user=user)
    assert deposit.amount == Decimal("924.37")
    assert_ledger_consistent(user)


@pytest.mark.parametrize(
    "amount,currency,code",
    [
        ("0.79", "RUB", "invalid_amount"),  # 0.9875 ZNC < 1
        ("80000.01", "RUB", "invalid_amount"),  # 100000.0125 → 100000.01 ZNC > 100000
        ("10", "EUR", "no_exchange_rate"),
        ("10", "GBP", "invalid"),
        ("1.001", "RUB", "invalid"),
    ],
)
def test_converted_amount_must_be_within_limits(auth_client, amount, currency, code):
    rate("RUB", "1.25")
    response = auth_client.post(PURCHASE, {"amount": amount, "currency": currency}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not Payment.objects.exists()


def test_conversion_limits_are_inclusive(auth_client):
    rate("RUB", "1.25")
    assert auth_client.post(PURCHASE, {"amount": "0.80", "currency": "RUB"}, format="json").status_code == 201
    assert (
        auth_client.post(PURCHASE, {"amount": "80000", "currency": "RUB"}, format="json").status_code == 201
    )


def test_rates_endpoint_lists_current_rates(api_client):
    rate("RUB", "1.25")
    rate("EUR", "100.5")
    body = api_client.get("/api/v1/currency/exchange-rates").json()
    assert {(r["currency"], r["rate"]) for r in body} == {("RUB", "1.25000000"), ("EUR", "100.50000000")}


def test_rates_are_added_not_edited_in_the_admin(rf):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    request = rf.get("/admin/")
    request.user = staff
    admin = ExchangeRateAdmin(ExchangeRate, site)
    existing = rate("RUB", "1.25")
    assert admin.has_add_permission(request)
    assert not admin.has_change_permission(request, existing)
    assert not admin.has_delete_permission(request, existing)


def test_topup_page_offers_rated_currencies(user):
    from django.test import Client
    from django.urls import reverse

    from tests.factories import DEFAULT_PASSWORD

    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    assert 'type="hidden" name="currency"' in client.get(reverse("currency:topup")).content.decode()
    rate("USD", "92.345")
    page = client.get(reverse("currency:topup")).content.decode()
    assert '<option value="USD">' in page and "1 USD = " in page
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # the form's one-time nonce
    response = client.post(reverse("currency:topup"), {"amount": "10.01", "currency": "USD", "nonce": nonce})
    assert response.status_code == 200
    payment = Payment.objects.get(user=user)
    assert (payment.currency, payment.original_amount, payment.amount) == (
        "USD",
        Decimal("10.01"),
        Decimal("924.37"),
    )
    assert "924" in response.content.decode()
