"""The REST hot path (docs/performance.md "REST as deployed"): the JWT user read with one
precompiled query, the balance without a second query, users/me and the transactions list
rendered by shared serializers. Each shortcut answers exactly what DRF and the ORM answered,
and nothing is cached between requests: a deactivation, a password change, a tier or balance
change apply to the very next request."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve
from rest_framework import serializers
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import user_by_pk
from accounts.models import User
from accounts.serializers import UserSerializer
from currency.models import Transaction
from currency.serializers import TransactionSerializer
from tests.factories import UserFactory, fund
from zenzefi.representation import represent

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/currency/balance"
ME = "/api/v1/users/me"
TXS = "/api/v1/currency/transactions"


def jwt_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


def field_values(user) -> dict:
    return {f.attname: getattr(user, f.attname) for f in User._meta.concrete_fields}


def test_user_by_pk_reads_the_same_row_as_the_orm_in_one_query():
    referrer = UserFactory()
    user = UserFactory(referred_by=referrer, full_name="Анна", tier="premium", is_staff=True)
    fund(user, "12.34")
    with CaptureQueriesContext(connection) as queries:
        fast = user_by_pk(user.pk)
    assert len(queries) == 1
    orm = User.objects.get(pk=user.pk)
    assert field_values(fast) == field_values(orm)
    assert fast.balance == Decimal("12.34") and fast.referred_by == referrer
    assert not fast._state.adding and fast._state.db == "default"
    assert user_by_pk(str(user.pk)).pk == user.pk  # the JWT claim is a string
    assert user_by_pk(10**9) is None
    assert user_by_pk("not-a-number") is None


def test_balance_with_a_jwt_is_one_query_and_always_current(user):
    client = jwt_client(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(BALANCE).json() == {"balance": "0.00"}
    assert len(queries) == 1  # the user row (balance included); no refresh_from_db
    fund(user, "7.5")
    assert client.get(BALANCE).json() == {"balance": "7.50"}
    User.objects.filter(pk=user.pk).update(balance=Decimal("3.00"))  # even behind the ledger's back
    assert client.get(BALANCE).json() == {"balance": "3.00"}


def test_balance_of_a_user_handed_in_from_outside_is_read_again(user):
    client = APIClient()
    client.force_authenticate(user)  # this object is not re-read by any authenticator
    User.objects.filter(pk=user.pk).update(balance=Decimal("4.00"))
    assert user.balance == Decimal("0")  # stale in memory
    assert client.get(BALANCE).json() == {"balance": "4.00"}


def test_changes_to_the_user_row_apply_to_the_very_next_jwt_request(user):
    client = jwt_client(user)
    assert client.get(ME).json()["tier"] == "free"
    User.objects.filter(pk=user.pk).update(tier="premium")
    assert client.get(ME).json()["tier"] == "premium"
    # Deactivated outside the services (no blacklist, no signal): refused at once.
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = client.get(BALANCE)
    assert response.status_code == 401 and response.json()["code"] == "user_inactive"
    User.objects.filter(pk=user.pk).update(is_active=True)
    assert client.get(BALANCE).status_code == 200
    # A new password (saved outside the services): the revoke claim no longer matches.
    user.set_password("Another-Pass-2026!")
    User.objects.filter(pk=user.pk).update(password=user.password)
    response = client.get(BALANCE)
    assert response.status_code == 401 and response.json()["code"] == "password_changed"


def test_a_jwt_of_a_deleted_user_is_401_user_not_found():
    gone = UserFactory()
    client = jwt_client(gone)
    User.objects.filter(pk=gone.pk).delete()
    response = client.get(BALANCE)
    assert response.status_code == 401 and response.json()["code"] == "user_not_found"


def drf_generic(serializer: serializers.Serializer, instance) -> dict:
    """DRF's own Serializer.to_representation (what the serializers answered before)."""
    return dict(serializers.Serializer.to_representation(serializer, instance))


def test_users_me_answers_what_drf_answers(user):
    referrer = UserFactory(username="the-referrer")
    User.objects.filter(pk=user.pk).update(referred_by=referrer, full_name="Ölga", tier="enterprise")
    fund(user, "1234.5")
    fresh = User.objects.get(pk=user.pk)
    expected = drf_generic(UserSerializer(), fresh)
    assert expected["referred_by"] == "the-referrer" and expected["balance"] == "1234.50"
    assert represent(UserSerializer, fresh) == expected
    assert UserSerializer(fresh).data == expected
    with CaptureQueriesContext(connection) as queries:
        body = jwt_client(user).get(ME).json()
    assert body == expected
    assert len(queries) == 2  # the user row, the referrer's username


@pytest.mark.parametrize("language", ["en", "ru"])
def test_transactions_page_answers_what_drf_answers(user, language):
    for amount in ("10", "2.5", "-1.25"):
        fund(user, amount)
    client = jwt_client(user)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(TXS, HTTP_ACCEPT_LANGUAGE=language).json()
    assert len(queries) == 3  # the user row, the count, the page
    from django.utils import translation

    with translation.override(language):
        rows = list(Transaction.objects.filter(user=user).order_by("-created_at", "-id"))
        child = TransactionSerializer()
        expected = [drf_generic(child, row) for row in rows]
    assert body["count"] == 3 and body["results"] == expected
    assert [row["amount"] for row in body["results"]] == ["-1.25", "2.50", "10.00"]
    assert body["results"][0]["created_at"].endswith("Z")


def test_the_api_resolves_before_the_pages():
    match = resolve(BALANCE)
    assert match.url_name == "currency-balance" and match.route == "api/v1/currency/balance"
    # The API first, its patterns inline: nothing of the pages tried, no nested include("")s.
    assert match.tried and all(
        len(tried) == 2 and str(tried[0].pattern) == "api/v1/" for tried in match.tried
    )
