"""Token pages: buy (review step, then the token shown once), list, revoke with the exact refund."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from tests.factories import UserFactory, fund
from tokens.models import AccessToken, token_digest
from tokens.services import refund_for, token_activate, token_purchase

pytestmark = pytest.mark.django_db

BUY = "/account/tokens/buy/"
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def user(db):
    return UserFactory(language="en")


@pytest.fixture
def client(user):
    client = Client(**EN)
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def nonce(client, path: str = BUY) -> str:
    """The one-time nonce the page renders into its money form."""
    return re.search(r'name="nonce" value="([^"]+)"', text(client.get(path))).group(1)


def shown_token(response) -> str:
    return re.search(r'data-testid="token-value"[^>]*>([^<]+)</textarea>', text(response)).group(1)


def test_buy_page_lists_durations_with_prices_and_scopes(client, user):
    fund(user, "50")
    body = text(client.get(BUY))
    for label in [
        "1 hour — 1.00 ZNC",
        "12 hours — 10.00 ZNC",
        "24 hours — 18.00 ZNC",
        "7 days — 100.00 ZNC",
        "30 days — 300.00 ZNC",
    ]:
        assert label in body
    assert "Full access" in body and "Certificates only" in body
    assert "50.00 ZNC" in body


def test_review_step_shows_price_and_changes_nothing(client, user):
    fund(user, "50")
    response = client.post(BUY, {"duration_hours": "24", "scope": "certificates_only", "step": "review"})
    body = text(response)
    assert response.status_code == 200
    assert "Confirm your purchase" in body and '<dd data-testid="price">18.00 ZNC</dd>' in body
    assert "32.00 ZNC" in body  # balance after
    assert 'name="step" value="confirm"' in body
    assert AccessToken.objects.count() == 0 and Transaction.objects.filter(type="PURCHASE").count() == 0


def test_confirm_buys_and_shows_the_token_once(client, user):
    fund(user, "50")
    response = client.post(
        BUY, {"duration_hours": "24", "scope": "full", "step": "confirm", "nonce": nonce(client)}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plaintext = shown_token(response)
    token = AccessToken.objects.get(user=user)
    assert len(plaintext) == 64 and token.digest == token_digest(plaintext) and token.prefix == plaintext[:8]
    assert token.duration_hours == 24 and token.scope == "full" and token.cost == Decimal("18.00")
    body = text(response)
    assert "this is the only time it is shown" in body and "32.00 ZNC" in body
    user.refresh_from_db()
    assert user.balance == Decimal("32.00")
    # Never again: not on any page, not in the session, not in messages, not in the audit trail.
    for path in [
        "/account/",
        "/account/tokens/",
        BUY,
        "/account/transactions/",
        f"/account/tokens/{token.pk}/revoke/",
    ]:
        page = client.get(path)
        assert plaintext not in text(page), path
        assert token.prefix in text(page) or path in (BUY, "/account/transactions/")
    assert plaintext not in str(dict(client.session.items()))
    assert not any(plaintext in str(entry.details) for entry in AuditLog.objects.all())
    assert plaintext not in response.get("Location", "")


def test_copy_button_degrades_without_javascript(client, user):
    fund(user, "5")
    body = text(
        client.post(BUY, {"duration_hours": "1", "scope": "full", "step": "confirm", "nonce": nonce(client)})
    )
    assert re.search(r'<textarea[^>]*readonly[^>]*data-testid="token-value"', body)
    assert re.search(
        r'<button type="button" class="secondary copy-button" data-copy-target="token-\d+" hidden>', body
    )
    assert "<noscript>" in body and "/static/js/pages.js" in body


def test_insufficient_balance_is_a_clear_error_and_changes_nothing(client, user):
    fund(user, "5")
    response = client.post(
        BUY, {"duration_hours": "24", "scope": "full", "step": "confirm", "nonce": nonce(client)}
    )
    assert response.status_code == 402
    assert "Insufficient balance: 5.00 ZNC available, 18.00 ZNC needed." in text(response)
    assert re.search(r'<input type="radio" name="duration_hours" value="24"[^>]*checked>', text(response))
    user.refresh_from_db()
    assert user.balance == Decimal("5.00") and AccessToken.objects.count() == 0
    assert Transaction.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    "data,field",
    [
        ({"duration_hours": "2", "scope": "full"}, "duration_hours"),
        ({"duration_hours": "24", "scope": "everything"}, "scope"),
        ({"scope": "full"}, "duration_hours"),
    ],
)
def test_bad_choices_are_field_errors_and_change_nothing(client, user, data, field):
    fund(user, "50")
    response = client.post(BUY, {**data, "step": "confirm", "nonce": nonce(client)})
    assert response.status_code == 400 and field in response.context["form"].errors
    assert 'class="field-error"' in text(response)
    assert AccessToken.objects.count() == 0
    user.refresh_from_db()
    assert user.balance == Decimal("50.00")


def test_buy_is_get_or_post_only(client):
    assert client.put(BUY).status_code == 405


def test_token_list_shows_states_and_revoke_links(client, user):
    fund(user, "100")
    fresh = token_purchase(user=user, duration_hours=1).token
    running = token_purchase(user=user, duration_hours=12).token
    token_activate(token=running, now=timezone.now() - timedelta(hours=1))
    gone = token_purchase(user=user, duration_hours=1).token
    client.post(f"/account/tokens/{gone.pk}/revoke/")
    other = UserFactory()
    fund(other, "5")
    foreign = token_purchase(user=other, duration_hours=1).token
    body = text(client.get("/account/tokens/"))
    assert "Not activated yet" in body and "Active" in body and "Revoked" in body
    assert "refunded 1.00 ZNC" in body
    assert f'href="/account/tokens/{fresh.pk}/revoke/"' in body
    assert f'href="/account/tokens/{running.pk}/revoke/"' in body
    assert f'href="/account/tokens/{gone.pk}/revoke/"' not in body
    assert foreign.prefix not in body
    assert re.search(r"10\xa0hours(, 59\xa0minutes)?</td>", body)


def test_token_list_pages(client, user):
    fund(user, "100")
    for _ in range(25):
        token_purchase(user=user, duration_hours=1)
    first = client.get("/account/tokens/")
    assert len(first.context["page"].object_list) == 20 and "Page 1 of 2" in text(first)
    second = client.get("/account/tokens/", {"page": 2})
    assert len(second.context["page"].object_list) == 5


def test_revoke_confirmation_shows_the_full_refund_of_an_unused_token(client, user):
    fund(user, "100")
    token = token_purchase(user=user, duration_hours=168).token
    response = client.get(f"/account/tokens/{token.pk}/revoke/")
    body = text(response)
    assert '<strong data-testid="refund">100.00 ZNC</strong>' in body
    assert "never used" in body
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None  # GET changes nothing


def test_revoke_confirmation_shows_the_exact_pro_rata_refund(client, user):
    fund(user, "100")
    token = token_purchase(user=user, duration_hours=24).token
    start = timezone.now()
    token_activate(token=token, now=start)
    token.refresh_from_db()
    with time_machine.travel(start + timedelta(hours=6), tick=False):
        expected = refund_for(token, timezone.now())
        assert expected == Decimal("13.50")
        body = text(client.get(f"/account/tokens/{token.pk}/revoke/"))
        assert '<strong data-testid="refund">13.50 ZNC</strong>' in body
        response = client.post(f"/account/tokens/{token.pk}/revoke/")
    assert response["Location"] == "/account/tokens/"
    page = client.get(response["Location"])
    assert f"Token {token.prefix}… revoked. Refunded: 13.50 ZNC." in text(page)
    user.refresh_from_db()
    assert user.balance == Decimal("100.00") - Decimal("18.00") + Decimal("13.50")
    refund = Transaction.objects.get(user=user, type=TransactionType.REFUND)
    assert refund.amount == Decimal("13.50")


def test_revoke_twice_refunds_once(client, user):
    fund(user, "20")
    token = token_purchase(user=user, duration_hours=24).token
    client.post(f"/account/tokens/{token.pk}/revoke/")
    second = client.post(f"/account/tokens/{token.pk}/revoke/", follow=True)
    assert "This token is already revoked." in text(second)
    assert client.get(f"/account/tokens/{token.pk}/revoke/")["Location"] == "/account/tokens/"
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == 1
    user.refresh_from_db()
    assert user.balance == Decimal("20.00")


def test_other_users_tokens_are_404(client):
    other = UserFactory()
    fund(other, "5")
    token = token_purchase(user=other, duration_hours=1).token
    assert client.get(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None
