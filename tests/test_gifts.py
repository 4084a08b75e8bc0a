"""Gift codes: bought and charged now (GIFT −price), shown once (digest stored), expiring,
redeemed once (even from two threads at once) into a token on the redeemer's account."""

import hashlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from gifts.models import GiftCode
from gifts.services import GiftCodeInvalid, gift_purchase, gift_redeem
from tests.concurrency import run_concurrently
from tests.factories import DEFAULT_PASSWORD, UserFactory, fund
from tests.test_ledger import assert_ledger_consistent
from tokens.models import AccessToken, token_digest

pytestmark = pytest.mark.django_db

PURCHASE = "/api/v1/gifts/purchase"
REDEEM = "/api/v1/gifts/redeem"
LIST = "/api/v1/gifts/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_purchase_charges_now_and_shows_the_code_once(auth_client, user):
    fund(user, "50")
    response = auth_client.post(PURCHASE, {"duration_hours": 24, "scope": "certificates_only"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    code = body["code"]
    assert len(code) == 19 and code.count("-") == 3
    assert body["price"] == "18.00" and body["balance"] == "32.00" and body["status"] == "active"
    gift = GiftCode.objects.get()
    assert gift.digest == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    assert code not in str(list(GiftCode.objects.values()))
    row = Transaction.objects.get(user=user, type=TransactionType.GIFT)
    assert row.amount == Decimal("-18.00") and row.reference == f"gift:{gift.pk}"
    assert gift.expires_at > timezone.now() + timedelta(days=89)
    assert_ledger_consistent(user)
    entry = AuditLog.objects.get(action="gift.purchase")
    assert code not in str(entry.details)
    # Listed without the code.
    listed = auth_client.get(LIST).json()
    assert listed["count"] == 1 and listed["results"][0]["prefix"] == code[:4]
    assert code not in str(listed)


def test_purchase_without_money_is_402_and_leaves_nothing(auth_client, user):
    fund(user, "17.99")
    response = auth_client.post(PURCHASE, {"duration_hours": 24}, format="json")
    assert response.status_code == 402
    assert not GiftCode.objects.exists()
    assert not Transaction.objects.filter(type=TransactionType.GIFT).exists()


def test_bad_duration_or_scope_is_400(auth_client, user):
    fund(user, "50")
    assert auth_client.post(PURCHASE, {"duration_hours": 5}, format="json").status_code == 400
    assert (
        auth_client.post(PURCHASE, {"duration_hours": 24, "scope": "all"}, format="json").status_code == 400
    )
    assert not GiftCode.objects.exists()


def test_idempotent_purchase_charges_once_and_never_replays_the_code(auth_client, user):
    fund(user, "50")
    first = auth_client.post(PURCHASE, {"duration_hours": 1}, format="json", HTTP_IDEMPOTENCY_KEY="g1")
    again = auth_client.post(PURCHASE, {"duration_hours": 1}, format="json", HTTP_IDEMPOTENCY_KEY="g1")
    assert first.json()["code"] and again.json()["code"] is None
    assert GiftCode.objects.count() == 1


def test_redeem_issues_a_token_to_the_redeemer(user):
    fund(user, "50")
    bought = gift_purchase(buyer=user, duration_hours=24, scope="full")
    friend = UserFactory()
    response = client_for(friend).post(REDEEM, {"code": bought.code.lower().replace("-", " ")}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    token = AccessToken.objects.get(pk=body["token"]["id"])
    assert token.user == friend and token.cost == Decimal("18.00") and token.duration_hours == 24
    assert token.digest == token_digest(body["token"]["token"])
    gift = GiftCode.objects.get()
    assert gift.redeemed_by == friend and gift.token == token and gift.redeemed_at is not None
    # The redeemer's ledger is untouched; the buyer's shows the GIFT row.
    friend.refresh_from_db()
    assert friend.balance == Decimal("0.00") and not Transaction.objects.filter(user=friend).exists()
    assert AuditLog.objects.get(action="gift.redeem", actor=friend).details["token_id"] == token.pk
    # Both see it in their gift list.
    mine = client_for(user).get(LIST).json()["results"]
    theirs = client_for(friend).get(LIST).json()["results"]
    assert mine[0]["role"] == "bought" and mine[0]["status"] == "redeemed"
    assert theirs[0]["role"] == "redeemed" and theirs[0]["redeemed_by"] == friend.username


def test_second_redeem_unknown_and_expired_codes_are_404(user):
    fund(user, "50")
    used = gift_purchase(buyer=user, duration_hours=1, scope="full")
    expired = gift_purchase(buyer=user, duration_hours=1, scope="full")
    GiftCode.objects.filter(pk=expired.gift.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    friend = client_for(UserFactory())
    assert friend.post(REDEEM, {"code": used.code}, format="json").status_code == 201
    for code in (used.code, expired.code, "ABCD-EFGH-JKMN-PQRS", "short"):
        response = friend.post(REDEEM, {"code": code}, format="json")
        assert response.status_code == 404 and response.json()["code"] == "gift_code_invalid"
    assert AccessToken.objects.filter(gift__isnull=False).count() == 1
    reasons = sorted(
        AuditLog.objects.filter(action="gift.redeem_failed").values_list("details__reason", flat=True)
    )
    assert reasons == ["already_redeemed", "expired", "malformed", "unknown"]
    assert AuditLog.objects.filter(action="gift.redeem_failed", suspicious=True).count() == 2


def test_code_ttl_is_a_setting(user, settings):
    settings.GIFT_CODE_TTL_DAYS = 2
    fund(user, "5")
    gift = gift_purchase(buyer=user, duration_hours=1, scope="full").gift
    assert timedelta(days=1, hours=23) < gift.expires_at - timezone.now() <= timedelta(days=2)


def test_revoking_a_redeemed_gift_token_refunds_the_redeemer(user):
    from tokens.services import token_revoke

    fund(user, "20")
    bought = gift_purchase(buyer=user, duration_hours=24, scope="full")
    friend = UserFactory()
    redeemed = gift_redeem(user=friend, code=bought.code)
    token_revoke(token_id=redeemed.issued.token.pk, actor=friend, owner=friend)
    friend.refresh_from_db()
    assert friend.balance == Decimal("18.00")
    assert_ledger_consistent(friend)
    assert_ledger_consistent(user)


def form_nonce(response) -> dict:
    return {"nonce": re.search(r'name="nonce" value="([^"]+)"', response.content.decode()).group(1)}


def test_gift_page_buy_and_redeem(user):
    fund(user, "50")
    buyer = Client()
    assert buyer.login(username=user.username, password=DEFAULT_PASSWORD)
    gifts_page = buyer.get(reverse("gifts:gifts"))
    assert gifts_page.status_code == 200
    choice = {"action": "buy", "gift-duration_hours": "12", "gift-scope": "full"}
    review = buyer.post(reverse("gifts:gifts"), {**choice, "step": "review", **form_nonce(gifts_page)})
    assert 'data-testid="price"' in review.content.decode() and GiftCode.objects.count() == 0
    page = buyer.post(reverse("gifts:gifts"), {**choice, "step": "confirm", **form_nonce(review)})
    assert page.status_code == 200
    code = page.context["code"]
    assert code in page.content.decode()
    friend_user = UserFactory()
    friend = Client()
    assert friend.login(username=friend_user.username, password=DEFAULT_PASSWORD)
    done = friend.post(reverse("gifts:gifts"), {"action": "redeem", "code": code})
    assert done.status_code == 200
    assert done.context["issued"].plaintext in done.content.decode()
    again = friend.post(reverse("gifts:gifts"), {"action": "redeem", "code": code})
    assert again.status_code == 404
    assert AccessToken.objects.filter(user=friend_user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_double_redeem_from_two_threads_issues_one_token(requires_postgres):
    buyer = UserFactory()
    fund(buyer, "400")
    bought = gift_purchase(buyer=buyer, duration_hours=720, scope="full")
    redeemers = [UserFactory(), UserFactory()]
    results = run_concurrently([lambda u=u: gift_redeem(user=u, code=bought.code) for u in redeemers])
    assert sum(isinstance(r, GiftCodeInvalid) for r in results) == 1, results
    assert AccessToken.objects.filter(user__in=redeemers).count() == 1
    gift = GiftCode.objects.get()
    assert gift.token.user == gift.redeemed_by
    assert_ledger_consistent(buyer)


def test_gift_page_in_russian():
    user = UserFactory(language="ru")
    client = Client()
    assert client.login(username=user.username, password=DEFAULT_PASSWORD)
    page = client.get(reverse("gifts:gifts"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Активировать подарочный код" in page and "Подарить токен" in page
