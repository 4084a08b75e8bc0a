"""Bundle pages: list, confirmation, purchase (every token shown once), errors."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from bundles.models import TokenBundle
from currency.models import Transaction, TransactionType
from tests.factories import UserFactory, fund
from tokens.models import AccessToken, token_digest

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(db):
    return UserFactory(language="en")


@pytest.fixture
def client(user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


@pytest.fixture
def starter():
    return TokenBundle.objects.get(name="Starter Pack")


def text(response) -> str:
    return response.content.decode()


def test_bundle_list_shows_derived_prices(client):
    body = text(client.get("/account/bundles/"))
    assert "Starter Pack" in body and "5 tokens of 24 hours" in body
    assert "81.00" in body and "90.00" in body and "You save 9.00 ZNC · 16.20 ZNC per token" in body
    assert "Ultimate Package" in body and "20 tokens of 7 days" in body and "1,600.00" in body


def nonce(client, bundle) -> str:
    """The one-time nonce of the bundle's confirmation form."""
    page = text(client.get(f"/account/bundles/{bundle.pk}/buy/", follow=True))
    return re.search(r'name="nonce" value="([^"]+)"', page).group(1)


def test_inactive_bundles_are_hidden_and_cannot_be_bought(client, user, starter):
    fund(user, "500")
    TokenBundle.objects.filter(pk=starter.pk).update(is_active=False)
    assert "Starter Pack" not in text(client.get("/account/bundles/"))
    assert client.get(f"/account/bundles/{starter.pk}/buy/").status_code == 404
    assert client.post(f"/account/bundles/{starter.pk}/buy/", {"nonce": "x"}).status_code == 404
    assert AccessToken.objects.count() == 0


def test_confirmation_page_changes_nothing(client, user, starter):
    fund(user, "100")
    body = text(client.get(f"/account/bundles/{starter.pk}/buy/", follow=True))
    assert "Confirm your purchase" in body and '<dd data-testid="price">81.00 ZNC</dd>' in body
    assert "19.00 ZNC" in body  # balance after
    assert AccessToken.objects.count() == 0


def test_buy_bundle_shows_every_token_once(client, user, starter):
    fund(user, "100")
    response = client.post(f"/account/bundles/{starter.pk}/buy/", {"nonce": nonce(client, starter)})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = text(response)
    plaintexts = re.findall(r'data-testid="token-value"[^>]*>([^<]+)</textarea>', body)
    assert len(plaintexts) == 5
    tokens = AccessToken.objects.filter(user=user)
    assert {t.digest for t in tokens} == {token_digest(p) for p in plaintexts}
    assert "Bundle “Starter Pack” is yours" in body
    user.refresh_from_db()
    assert user.balance == Decimal("19.00")
    assert Transaction.objects.filter(user=user, type=TransactionType.PURCHASE).count() == 1
    for path in ["/account/", "/account/tokens/", "/account/bundles/"]:
        page = text(client.get(path))
        assert not any(p in page for p in plaintexts), path


def test_insufficient_balance_is_a_clear_error_and_changes_nothing(client, user, starter):
    fund(user, "80.99")
    response = client.post(f"/account/bundles/{starter.pk}/buy/", {"nonce": nonce(client, starter)})
    assert response.status_code == 402
    assert "Insufficient balance: 80.99 ZNC available, 81.00 ZNC needed." in text(response)
    user.refresh_from_db()
    assert user.balance == Decimal("80.99") and AccessToken.objects.count() == 0
    assert Transaction.objects.filter(user=user).count() == 1


def test_bundle_buy_is_get_or_post_only(client, starter):
    assert client.delete(f"/account/bundles/{starter.pk}/buy/").status_code == 405
