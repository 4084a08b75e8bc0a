"""Money pages: top up through the mock checkout (pay / cancel), top-ups disabled, history."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from currency.models import Transaction, TransactionType
from currency.services import balance_change
from tests.factories import UserFactory, fund

pytestmark = pytest.mark.django_db

TOPUP = "/account/topup/"
CHECKOUT = "/account/topup/mock/"
HISTORY = "/account/transactions/"


@pytest.fixture
def user(db):
    return UserFactory(language="en")


@pytest.fixture
def client(user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def checkout(response) -> dict:
    """The mock checkout form's checkout id and its pay nonce."""
    return {
        "checkout_id": re.search(r'name="checkout_id" value="([^"]+)"', text(response)).group(1),
        "nonce": re.search(r'name="nonce" value="([^"]+)"', text(response)).group(1),
    }


def nonce(client) -> dict:
    """The one-time nonce of the top-up amount form."""
    return {"nonce": re.search(r'name="nonce" value="([^"]+)"', text(client.get(TOPUP))).group(1)}


def test_topup_form_renders(client):
    body = text(client.get(TOPUP))
    assert "Top up your balance" in body and 'name="amount"' in body and 'step="0.01"' in body


def test_topup_shows_the_mock_checkout_and_changes_nothing_yet(client, user):
    response = client.post(TOPUP, {"amount": "150.50", **nonce(client)})
    body = text(response)
    assert response.status_code == 200
    assert "Checkout" in body and '<strong data-testid="checkout-amount">150.50 ZNC</strong>' in body
    assert 'name="action" value="pay"' in body and 'name="action" value="cancel"' in body
    assert Transaction.objects.count() == 0


def test_pay_credits_once(client, user):
    cid = checkout(client.post(TOPUP, {"amount": "150.50", **nonce(client)}))
    response = client.post(CHECKOUT, {**cid, "action": "pay"})
    assert response["Location"] == "/account/"
    dashboard = text(client.get("/account/"))
    assert "Top-up of 150.50 ZNC received. Balance: 150.50 ZNC." in dashboard
    user.refresh_from_db()
    assert user.balance == Decimal("150.50")
    row = Transaction.objects.get(user=user)
    assert row.type == TransactionType.DEPOSIT and row.amount == Decimal("150.50")
    again = client.post(CHECKOUT, {**cid, "action": "pay"}, follow=True)
    assert "This payment was already made" in text(again) and "nothing was charged now" in text(again)
    assert Transaction.objects.filter(user=user).count() == 1


def test_cancel_credits_nothing(client, user):
    cid = checkout(client.post(TOPUP, {"amount": "20", **nonce(client)}))
    response = client.post(CHECKOUT, {**cid, "action": "cancel"}, follow=True)
    assert "Top-up cancelled. Nothing was charged." in text(response)
    assert client.post(CHECKOUT, {**cid, "action": "pay"}).status_code == 302
    assert Transaction.objects.count() == 0


def test_a_forged_checkout_id_credits_nothing(client):
    response = client.post(CHECKOUT, {"checkout_id": "forged", "action": "pay"}, follow=True)
    assert "Nothing was charged" in text(response)
    assert Transaction.objects.count() == 0


def test_checkout_of_another_session_credits_nothing(client, user):
    cid = checkout(client.post(TOPUP, {"amount": "20", **nonce(client)}))
    other = Client()
    other.force_login(UserFactory())
    other.post(CHECKOUT, {**cid, "action": "pay"})
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize("amount", ["0", "0.5", "100000.01", "1.234", "-5", "abc", ""])
def test_bad_amounts_are_field_errors_and_change_nothing(client, amount):
    response = client.post(TOPUP, {"amount": amount, **nonce(client)})
    assert response.status_code == 400
    assert "amount" in response.context["form"].errors
    assert 'class="field-error"' in text(response)
    assert f'value="{amount}"' in text(response) or amount == ""
    assert Transaction.objects.count() == 0
    assert "mock_checkouts" not in client.session


def test_topups_unavailable_when_mock_payments_are_off(client, user, settings):
    cid = checkout(client.post(TOPUP, {"amount": "20", **nonce(client)}))
    form_nonce = nonce(client)
    settings.MOCK_PAYMENTS_ENABLED = False
    for response in (client.get(TOPUP), client.post(TOPUP, {"amount": "20", **form_nonce})):
        assert response.status_code == 200
        assert "Top-ups are unavailable right now" in text(response)
    paid = client.post(CHECKOUT, {**cid, "action": "pay"}, follow=True)
    assert "Top-ups are unavailable right now." in text(paid)
    assert Transaction.objects.count() == 0
    assert 'href="/account/topup/"' not in text(client.get("/account/")).split("</header>")[1]


def test_checkout_is_post_only(client):
    assert client.get(CHECKOUT).status_code == 405


def test_history_pages_and_filters(client, user):
    fund(user, "1000")
    for i in range(24):
        balance_change(
            user=user, amount=Decimal("-1"), transaction_type=TransactionType.PURCHASE, description=f"buy {i}"
        )
    balance_change(user=user, amount=Decimal("2"), transaction_type=TransactionType.REFUND)
    first = client.get(HISTORY)
    assert len(first.context["page"].object_list) == 20 and "Page 1 of 2" in text(first)
    assert text(first).index("Refund") < text(first).index("buy 23")  # newest first
    assert 'href="?page=2"' in text(first)
    second = client.get(HISTORY, {"page": 2})
    assert len(second.context["page"].object_list) == 6 and "test funding" in text(second)
    deposits = client.get(HISTORY, {"type": "DEPOSIT"})
    assert [t.type for t in deposits.context["page"].object_list] == ["DEPOSIT"]
    purchases = client.get(HISTORY, {"type": "PURCHASE"})
    assert purchases.context["page"].paginator.count == 24
    assert 'href="?page=2&amp;type=PURCHASE"' in text(purchases)
    assert '<option value="PURCHASE" selected>Purchase</option>' in text(purchases)
    assert "978.00" in text(first) and "999.00" in text(second)  # balance after each row


def test_history_bad_filter_shows_an_error_and_everything(client, user):
    fund(user, "10")
    response = client.get(HISTORY, {"type": "BOGUS"})
    assert response.status_code == 200 and "type" in response.context["form"].errors
    assert response.context["page"].paginator.count == 1


def test_history_shows_only_my_transactions(client, user):
    fund(UserFactory(), "77")
    fund(user, "5")
    body = text(client.get(HISTORY))
    assert "+5.00" in body and "77.00" not in body


def test_history_empty(client):
    assert "No transactions to show." in text(client.get(HISTORY))
