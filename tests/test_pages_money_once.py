"""Money pages charge once per form (issue 13): a reload, a resubmit, back-and-submit or a double
click sends the form's one-time nonce again and is answered "already made" without a second
charge and without the plaintext; a missing or forged nonce is a clear error that changes nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.utils import timezone

from bundles.models import TokenBundle
from currency.models import Transaction, TransactionType
from gifts.models import GiftCode
from idempotency.models import IdempotencyRecord
from idempotency.services import InvalidPageNonce, page_action_once, page_nonce_issue
from payments.models import Payment, PaymentStatus
from tests.concurrency import run_threads
from tests.factories import UserFactory, fund
from tests.test_ledger import assert_ledger_consistent
from tokens.models import AccessToken
from zenzefi.errors import InsufficientFunds

pytestmark = pytest.mark.django_db

BUY = "/account/tokens/buy/"
GIFTS = "/account/gifts/"
TOPUP = "/account/topup/"
CHECKOUT = "/account/topup/mock/"
ALREADY = 'data-testid="already-made"'
NONCE_ERROR = "This form has expired or was already replaced by a newer one. Nothing was charged"


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


def nonce_in(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', text(response)).group(1)


def balance(user) -> Decimal:
    user.refresh_from_db(fields=["balance"])
    return user.balance


def purchases(user) -> int:
    return Transaction.objects.filter(user=user, type=TransactionType.PURCHASE).count()


def forged(nonce: str) -> str:
    return nonce[:-3] + ("AAA" if not nonce.endswith("AAA") else "BBB")


# --- tokens ---------------------------------------------------------------------------------------


def token_confirm_form(client) -> dict:
    """Choose → review (the review passes the choice page's nonce on to the confirm form)."""
    choice = {"duration_hours": "24", "scope": "full"}
    review = client.post(BUY, {**choice, "step": "review", "nonce": nonce_in(client.get(BUY))})
    return {**choice, "step": "confirm", "nonce": nonce_in(review)}


def test_token_confirm_sent_twice_charges_once_and_says_already_made(client, user):
    fund(user, "50")
    form = token_confirm_form(client)
    first = client.post(BUY, form)
    plaintext = re.search(r'data-testid="token-value"[^>]*>([^<]+)</textarea>', text(first)).group(1)
    again = client.post(BUY, form)  # F5 on the result page, back-and-submit, a second click
    assert again.status_code == 200
    body = text(again)
    assert ALREADY in body and "This purchase was already made" in body
    assert plaintext not in body and 'data-testid="token-value"' not in body
    token = AccessToken.objects.get(user=user)  # exactly one
    assert f"/account/tokens/{token.pk}/revoke/" in body  # unused: revoke with a full refund
    assert "get the full 18.00 ZNC back" in body and 'href="/account/tokens/"' in body
    assert balance(user) == Decimal("32.00") and purchases(user) == 1
    assert_ledger_consistent(user)
    record = IdempotencyRecord.objects.get(user=user, scope="page:tokens.buy")
    assert record.response_body == {"tokens": [token.pk], "total": "18.00"}
    assert plaintext not in str(record.response_body)


def test_the_review_page_keeps_the_nonce_so_back_and_submit_buys_once(client, user):
    fund(user, "50")
    choice_nonce = nonce_in(client.get(BUY))
    review = {"duration_hours": "24", "scope": "full", "step": "review", "nonce": choice_nonce}
    first_confirm = nonce_in(client.post(BUY, review))
    client.post(BUY, {**review, "step": "confirm", "nonce": first_confirm})
    # The back button re-requests the review: the same nonce again, so its Pay replays.
    assert nonce_in(client.post(BUY, review)) == first_confirm
    assert ALREADY in text(client.post(BUY, {**review, "step": "confirm", "nonce": first_confirm}))
    assert AccessToken.objects.filter(user=user).count() == 1 and balance(user) == Decimal("32.00")
    # A fresh visit of the buy page is a new purchase.
    assert nonce_in(client.get(BUY)) != choice_nonce


@pytest.mark.parametrize("how", ["missing", "forged", "other_user", "other_action", "expired"])
def test_token_confirm_without_a_valid_nonce_is_an_error_and_changes_nothing(client, user, how):
    fund(user, "50")
    form = token_confirm_form(client)
    if how == "missing":
        del form["nonce"]
    elif how == "forged":
        form["nonce"] = forged(form["nonce"])
    elif how == "other_user":
        form["nonce"] = page_nonce_issue(user=UserFactory(), action="tokens.buy")
    elif how == "other_action":
        form["nonce"] = page_nonce_issue(user=user, action="gifts.buy")
    if how == "expired":
        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            response = client.post(BUY, form)
    else:
        response = client.post(BUY, form)
    assert response.status_code == 400 and NONCE_ERROR in text(response)
    assert AccessToken.objects.count() == 0 and balance(user) == Decimal("50.00") and purchases(user) == 0
    assert not IdempotencyRecord.objects.exists()
    # The error page carries a fresh nonce: confirming from it works.
    retry = client.post(BUY, {**form, "nonce": nonce_in(response)})
    assert 'data-testid="token-value"' in text(retry) and balance(user) == Decimal("32.00")


def test_a_failed_purchase_keeps_no_record_so_the_same_form_can_be_sent_again(client, user):
    fund(user, "5")
    form = token_confirm_form(client)
    assert client.post(BUY, form).status_code == 402
    assert not IdempotencyRecord.objects.exists() and AccessToken.objects.count() == 0
    fund(user, "20")
    assert 'data-testid="token-value"' in text(client.post(BUY, form))
    assert balance(user) == Decimal("7.00") and purchases(user) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_confirms_with_one_nonce_charge_once(requires_postgres):
    user = UserFactory(language="en")
    fund(user, "100")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    form = token_confirm_form(client)
    session_cookie = client.cookies

    def confirm():
        other = Client(HTTP_ACCEPT_LANGUAGE="en")
        other.cookies = session_cookie
        return text(other.post(BUY, form))

    bodies = run_threads(6, confirm)
    assert all(isinstance(body, str) for body in bodies), bodies
    assert sum('data-testid="token-value"' in body for body in bodies) == 1
    assert sum(ALREADY in body for body in bodies) == 5
    assert AccessToken.objects.filter(user=user).count() == 1
    assert balance(user) == Decimal("82.00") and purchases(user) == 1
    assert_ledger_consistent(user)


@pytest.mark.django_db(transaction=True)
def test_page_action_once_runs_once_under_concurrency(requires_postgres):
    user = UserFactory()
    fund(user, "100")
    nonce = page_nonce_issue(user=user, action="tokens.buy")
    from tokens.services import token_purchase

    def buy():
        return page_action_once(
            user=user,
            action="tokens.buy",
            nonce=nonce,
            perform=lambda: (token_purchase(user=user, duration_hours=1, scope="full"), {"n": 1}),
        )

    outcomes = run_threads(8, buy)
    assert sum(not o.replayed for o in outcomes) == 1 and sum(o.replayed for o in outcomes) == 7
    assert all(o.reference == {"n": 1} for o in outcomes)
    assert AccessToken.objects.filter(user=user).count() == 1
    assert_ledger_consistent(user)


def test_page_action_once_rolls_the_record_back_with_a_failed_action(user):
    nonce = page_nonce_issue(user=user, action="x")

    def fail():
        raise InsufficientFunds()

    with pytest.raises(InsufficientFunds):
        page_action_once(user=user, action="x", nonce=nonce, perform=fail)
    assert not IdempotencyRecord.objects.exists()
    with pytest.raises(InvalidPageNonce):
        page_action_once(user=user, action="y", nonce=nonce, perform=fail)
    with pytest.raises(InvalidPageNonce):
        page_action_once(
            user=user, action="x", nonce=signing.dumps({"u": user.pk, "a": "x", "k": "k"}), perform=fail
        )


# --- bundles --------------------------------------------------------------------------------------


def test_bundle_bought_twice_with_one_form_charges_once(client, user):
    fund(user, "100")
    bundle = TokenBundle.objects.get(name="Starter Pack")
    url = f"/account/bundles/{bundle.pk}/buy/"
    landing = client.get(url)
    assert landing.status_code == 302 and "?nonce=" in landing["Location"]
    confirm_page = client.get(landing["Location"])
    nonce = nonce_in(confirm_page)
    first = client.post(url, {"nonce": nonce})
    plaintexts = re.findall(r'data-testid="token-value"[^>]*>([^<]+)</textarea>', text(first))
    assert len(plaintexts) == 5
    # The back button shows the confirmation again at the same address: the same nonce.
    assert nonce_in(client.get(landing["Location"])) == nonce
    again = client.post(url, {"nonce": nonce})
    body = text(again)
    assert ALREADY in body and not any(p in body for p in plaintexts)
    assert body.count("Revoke with a full refund") == 5
    assert AccessToken.objects.filter(user=user).count() == 5
    assert balance(user) == Decimal("19.00") and purchases(user) == 1


@pytest.mark.parametrize("nonce", [None, "forged"])
def test_bundle_without_a_valid_nonce_is_an_error_and_changes_nothing(client, user, nonce):
    fund(user, "100")
    bundle = TokenBundle.objects.get(name="Starter Pack")
    url = f"/account/bundles/{bundle.pk}/buy/"
    if nonce == "forged":
        nonce = forged(nonce_in(client.get(url, follow=True)))
    response = client.post(url, {"nonce": nonce} if nonce else {})
    assert response.status_code == 400 and NONCE_ERROR in text(response)
    assert AccessToken.objects.count() == 0 and balance(user) == Decimal("100.00")
    # A nonce of another bundle's form does not buy this one either.
    other = TokenBundle.objects.exclude(pk=bundle.pk).first()
    other_nonce = nonce_in(client.get(f"/account/bundles/{other.pk}/buy/", follow=True))
    assert client.post(url, {"nonce": other_nonce}).status_code == 400
    assert AccessToken.objects.count() == 0 and balance(user) == Decimal("100.00")


# --- gifts ----------------------------------------------------------------------------------------


def gift_confirm_form(client) -> dict:
    choice = {"action": "buy", "gift-duration_hours": "12", "gift-scope": "full"}
    review = client.post(GIFTS, {**choice, "step": "review", "nonce": nonce_in(client.get(GIFTS))})
    assert GiftCode.objects.count() == 0
    return {**choice, "step": "confirm", "nonce": nonce_in(review)}


def test_gift_bought_twice_with_one_form_charges_once(client, user):
    fund(user, "50")
    form = gift_confirm_form(client)
    first = client.post(GIFTS, form)
    code = first.context["code"]
    again = client.post(GIFTS, form)
    body = text(again)
    assert ALREADY in body and code not in body and 'data-testid="gift-code"' not in body
    assert "The gift code was shown only once" in body
    assert GiftCode.objects.filter(buyer=user).count() == 1
    assert balance(user) == Decimal("40.00")
    assert Transaction.objects.filter(user=user, type=TransactionType.GIFT).count() == 1


@pytest.mark.parametrize("nonce", [None, "forged"])
def test_gift_without_a_valid_nonce_is_an_error_and_changes_nothing(client, user, nonce):
    fund(user, "50")
    form = gift_confirm_form(client)
    if nonce is None:
        del form["nonce"]
    else:
        form["nonce"] = forged(form["nonce"])
    response = client.post(GIFTS, form)
    assert response.status_code == 400 and NONCE_ERROR in text(response)
    assert GiftCode.objects.count() == 0 and balance(user) == Decimal("50.00")


# --- top-ups --------------------------------------------------------------------------------------


def test_topup_amount_form_sent_twice_starts_one_payment_and_pay_twice_credits_once(client, user):
    form = {"amount": "40", "nonce": nonce_in(client.get(TOPUP))}
    first = client.post(TOPUP, form)
    again = client.post(TOPUP, form)  # F5 on the checkout page
    checkout_id = re.search(r'name="checkout_id" value="([^"]+)"', text(first)).group(1)
    assert checkout_id in text(again)
    assert Payment.objects.filter(user=user).count() == 1
    pay = {"checkout_id": checkout_id, "action": "pay", "nonce": nonce_in(first)}
    assert nonce_in(again) == pay["nonce"]  # one checkout, one pay nonce
    assert client.post(CHECKOUT, pay)["Location"] == "/account/"
    repeat = client.post(CHECKOUT, pay)  # back-and-submit on the checkout page
    assert ALREADY in text(repeat) and "This payment was already made" in text(repeat)
    after = client.post(TOPUP, form)  # the amount form once more, after paying
    assert ALREADY in text(after) and "40.00 ZNC" in text(after)
    assert Payment.objects.get(user=user).status == PaymentStatus.SUCCEEDED
    assert balance(user) == Decimal("40.00")
    assert Transaction.objects.filter(user=user, type=TransactionType.DEPOSIT).count() == 1


@pytest.mark.parametrize("nonce", [None, "forged"])
def test_topup_without_a_valid_nonce_is_an_error_and_changes_nothing(client, user, nonce):
    form = {"amount": "40"}
    if nonce:
        form["nonce"] = forged(nonce_in(client.get(TOPUP)))
    response = client.post(TOPUP, form)
    assert response.status_code == 400 and NONCE_ERROR in text(response)
    assert not Payment.objects.exists()
    started = client.post(TOPUP, {"amount": "40", "nonce": nonce_in(client.get(TOPUP))})
    checkout_id = re.search(r'name="checkout_id" value="([^"]+)"', text(started)).group(1)
    pay = {"checkout_id": checkout_id, "action": "pay"}
    if nonce:
        pay["nonce"] = forged(nonce_in(started))
    refused = client.post(CHECKOUT, pay, follow=True)
    assert "This checkout form is not valid or has expired. Nothing was charged" in text(refused)
    # Another checkout's pay nonce does not pay this one.
    other = client.post(TOPUP, {"amount": "10", "nonce": nonce_in(client.get(TOPUP))})
    client.post(CHECKOUT, {**pay, "nonce": nonce_in(other)})
    assert balance(user) == Decimal("0.00") and not Transaction.objects.filter(user=user).exists()
    assert Payment.objects.get(provider_payment_id=checkout_id).status == PaymentStatus.PENDING
