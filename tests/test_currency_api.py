from decimal import Decimal

import pytest
from django.test import override_settings

from currency.models import Transaction, TransactionType
from currency.services import balance_change
from tests.factories import UserFactory, fund

pytestmark = pytest.mark.django_db

MOCK = "/api/v1/currency/mock-purchase"
TXS = "/api/v1/currency/transactions"


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"detail", "code"}
    assert isinstance(body["detail"], str) and body["detail"]
    if code:
        assert body["code"] == code
    return body


def test_balance(auth_client, user):
    assert auth_client.get("/api/v1/currency/balance").json() == {"balance": "0.00"}
    fund(user, "12.5")
    assert auth_client.get("/api/v1/currency/balance").json() == {"balance": "12.50"}


@pytest.mark.parametrize("path", ["/api/v1/currency/balance", TXS, "/api/v1/users/me"])
def test_endpoints_need_authentication(api_client, path):
    assert_error(api_client.get(path), 401, "not_authenticated")


def test_unauthenticated_mock_purchase_writes_nothing(api_client):
    assert_error(api_client.post(MOCK, {"amount": "10"}, format="json"), 401)
    assert Transaction.objects.count() == 0


def test_mock_purchase_credits_and_records(auth_client, user):
    response = auth_client.post(MOCK, {"amount": "150.25"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["balance"] == "150.25"
    assert body["transaction"]["type"] == "DEPOSIT"
    assert body["transaction"]["amount"] == "150.25"
    user.refresh_from_db()
    assert user.balance == Decimal("150.25")
    row = Transaction.objects.get(user=user)
    assert row.type == TransactionType.DEPOSIT and row.balance_after == Decimal("150.25")


@pytest.mark.parametrize(
    "amount",
    [0, "0.99", -5, "100000.01", "1.234", "abc", "", None, True, "NaN", "Infinity", [], {"x": 1}],
)
def test_mock_purchase_bad_amounts_are_400_and_change_nothing(auth_client, user, amount):
    body = assert_error(auth_client.post(MOCK, {"amount": amount}, format="json"), 400, "invalid")
    assert "amount" in body["errors"]
    user.refresh_from_db()
    assert user.balance == 0
    assert Transaction.objects.count() == 0


def test_mock_purchase_missing_body_is_400(auth_client):
    assert_error(auth_client.post(MOCK, {}, format="json"), 400, "invalid")
    assert_error(auth_client.post(MOCK, "not json", content_type="application/json"), 400)
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize("amount", ["1", "1.00", "100000", 42, "99.99"])
def test_mock_purchase_boundaries_accepted(auth_client, amount):
    assert auth_client.post(MOCK, {"amount": amount}, format="json").status_code == 200


@override_settings(MOCK_PAYMENTS_ENABLED=False)
def test_mock_purchase_disabled(auth_client, user):
    assert_error(auth_client.post(MOCK, {"amount": "10"}, format="json"), 404, "mock_payments_disabled")
    assert Transaction.objects.count() == 0


def test_transactions_paging_and_filter(auth_client, user):
    fund(user, "100")
    for _ in range(4):
        balance_change(user=user, amount=Decimal("-1"), transaction_type=TransactionType.PURCHASE)
    other = UserFactory()
    fund(other, "7")

    body = auth_client.get(TXS).json()
    assert body["count"] == 5 and body["skip"] == 0 and len(body["results"]) == 5
    assert body["results"][0]["balance_after"] == "96.00"  # newest first
    page = auth_client.get(TXS, {"skip": 1, "limit": 2}).json()
    assert [r["balance_after"] for r in page["results"]] == ["97.00", "98.00"]
    deposits = auth_client.get(TXS, {"transaction_type": "DEPOSIT"}).json()
    assert deposits["count"] == 1 and deposits["results"][0]["transaction_type"] == "DEPOSIT"


@pytest.mark.parametrize(
    "params",
    [
        {"skip": -1},
        {"skip": "x"},
        {"limit": 0},
        {"limit": 1000},
        {"limit": "ten"},
        {"transaction_type": "BOGUS"},
    ],
)
def test_transactions_bad_params_are_400(auth_client, params):
    assert_error(auth_client.get(TXS, params), 400)


def test_unknown_api_path_is_json_404(api_client):
    assert_error(api_client.get("/api/v1/nope"), 404, "not_found")
