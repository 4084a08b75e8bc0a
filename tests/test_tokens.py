from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from idempotency.models import IdempotencyRecord
from tests.concurrency import run_threads
from tests.factories import UserFactory, fund
from tests.test_currency_api import assert_error
from tests.test_ledger import assert_ledger_consistent
from tokens import services
from tokens.models import AccessToken, token_digest
from zenzefi.errors import Conflict, InsufficientFunds

pytestmark = pytest.mark.django_db

BUY = "/api/v1/tokens/purchase"
MINE = "/api/v1/tokens/my-tokens"
PRICES = {1: "1.00", 12: "10.00", 24: "18.00", 168: "100.00", 720: "300.00"}


def buy(client, **body):
    return client.post(BUY, {"duration_hours": 24, "scope": "full", **body}, format="json")


@pytest.mark.parametrize("hours,price", PRICES.items())
def test_price_table(auth_client, user, hours, price):
    fund(user, "1000")
    response = buy(auth_client, duration_hours=hours)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cost"] == price and body["duration_hours"] == hours
    assert len(body["token"]) == 64 and body["prefix"] == body["token"][:8]
    assert body["activated_at"] is None and body["expires_at"] is None
    token = AccessToken.objects.get(pk=body["id"])
    assert token.digest == token_digest(body["token"])
    row = Transaction.objects.get(user=user, type=TransactionType.PURCHASE)
    assert row.amount == -Decimal(price) and row.reference == f"token:{token.pk}"
    assert AuditLog.objects.filter(action="token.purchase", resource_id=str(token.pk)).exists()
    assert_ledger_consistent(user)


@override_settings(
    TOKEN_PRICES={
        1: Decimal("2.50"),
        12: Decimal("10"),
        24: Decimal("18"),
        168: Decimal("100"),
        720: Decimal("300"),
    }
)
def test_price_comes_from_settings(auth_client, user):
    fund(user, "10")
    assert buy(auth_client, duration_hours=1).json()["cost"] == "2.50"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"duration_hours": 2}, "duration_hours"),
        ({"duration_hours": 0}, "duration_hours"),
        ({"duration_hours": "abc"}, "duration_hours"),
        ({"duration_hours": None}, "duration_hours"),
        ({"scope": "admin"}, "scope"),
        ({"scope": ""}, "scope"),
    ],
)
def test_bad_duration_or_scope_is_400_and_changes_nothing(auth_client, user, body, field):
    fund(user, "100")
    result = assert_error(buy(auth_client, **body), 400, "invalid")
    assert field in result["errors"]
    user.refresh_from_db()
    assert user.balance == Decimal("100.00")
    assert AccessToken.objects.count() == 0 and Transaction.objects.count() == 1


def test_insufficient_balance_is_402_and_leaves_nothing(auth_client, user):
    fund(user, "17.99")
    body = assert_error(buy(auth_client), 402, "insufficient_funds")
    assert "17.99" in body["detail"]
    user.refresh_from_db()
    assert user.balance == Decimal("17.99")
    assert AccessToken.objects.count() == 0
    assert Transaction.objects.filter(user=user).count() == 1


def test_purchase_needs_auth(api_client):
    assert_error(buy(api_client), 401)


def test_idempotent_purchase_charges_once_and_never_stores_plaintext(auth_client, user):
    fund(user, "100")
    first = auth_client.post(BUY, {"duration_hours": 24}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    again = auth_client.post(BUY, {"duration_hours": 24}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.json()["token"] is None
    assert AccessToken.objects.count() == 1
    user.refresh_from_db()
    assert user.balance == Decimal("82.00")
    plaintext = first.json()["token"]
    assert plaintext not in str(IdempotencyRecord.objects.get().response_body)


def test_plaintext_never_listed_stored_logged_or_cached(
    auth_client, user, caplog, django_capture_on_commit_callbacks
):
    from zenzefi.kv import get_kv

    fund(user, "100")
    with caplog.at_level("DEBUG"), django_capture_on_commit_callbacks(execute=True):
        plaintext = buy(auth_client).json()["token"]
        listing = auth_client.get(MINE).content.decode()
        from tests.token_checks import check_token

        assert check_token(plaintext).valid
    assert plaintext not in listing and "digest" not in listing
    assert plaintext not in caplog.text
    for entry in AuditLog.objects.all():
        assert plaintext not in str(entry.details)
    token = AccessToken.objects.get()
    assert plaintext not in (token.digest, token.prefix)
    kv = get_kv()
    if hasattr(kv, "client"):
        keys = [k.decode() for k in kv.client.scan_iter(match=kv.prefix + "*")]
        assert keys and all(plaintext not in k for k in keys)
        assert any(token.digest in k for k in keys)


def test_my_tokens_and_active_only(auth_client, user):
    fund(user, "100")
    a = services.token_purchase(user=user, duration_hours=1).token
    b = services.token_purchase(user=user, duration_hours=1).token
    c = services.token_purchase(user=user, duration_hours=1).token
    services.token_revoke(token_id=a.pk, owner=user, actor=user)
    services.token_activate(token=b, now=timezone.now() - timedelta(hours=2))  # expired
    UserFactory()  # someone else's tokens never show
    all_ids = [t["id"] for t in auth_client.get(MINE).json()["results"]]
    assert sorted(all_ids) == sorted([a.pk, b.pk, c.pk])
    # Active = activated, not expired, not revoked: a token waiting for its first use is not.
    assert auth_client.get(MINE, {"active_only": "true"}).json()["results"] == []
    services.token_activate(token=c)
    active = auth_client.get(MINE, {"active_only": "true"}).json()["results"]
    assert [t["id"] for t in active] == [c.pk]
    statuses = {t["id"]: t["status"] for t in auth_client.get(MINE).json()["results"]}
    assert statuses == {a.pk: "revoked", b.pk: "expired", c.pk: "active"}
    assert_error(auth_client.get(MINE, {"active_only": "maybe"}), 400)


# --- refunds (frozen time)


def _token(user, hours=24):
    fund(user, "1000")
    return services.token_purchase(user=user, duration_hours=hours).token


def test_refund_never_activated_is_full(auth_client, user):
    token = _token(user)
    response = auth_client.delete(f"/api/v1/tokens/{token.pk}")
    assert response.status_code == 200
    assert response.json()["refund"] == "18.00"
    assert Transaction.objects.get(user=user, type=TransactionType.REFUND).amount == Decimal("18.00")
    assert_ledger_consistent(user)


def test_refund_half_used_is_half_rounded_down(user):
    start = timezone.now()
    token = _token(user, hours=1)  # cost 1.00
    services.token_activate(token=token, now=start)
    with time_machine.travel(start + timedelta(minutes=30, seconds=1), tick=False):
        revoked = services.token_revoke(token_id=token.pk, owner=user, actor=user)
    # 1.00 × 1799/3600 = 0.4997… → rounded down to 0.49
    assert revoked.refund_amount == Decimal("0.49")
    token24 = _token(user, hours=24)  # cost 18.00
    services.token_activate(token=token24, now=start)
    with time_machine.travel(start + timedelta(hours=12), tick=False):
        assert services.token_revoke(token_id=token24.pk, owner=user, actor=user).refund_amount == Decimal(
            "9.00"
        )
    assert_ledger_consistent(user)


def test_refund_expired_is_zero_and_writes_no_transaction(user):
    token = _token(user)
    services.token_activate(token=token, now=timezone.now() - timedelta(hours=25))
    refunds_before = Transaction.objects.filter(type=TransactionType.REFUND).count()
    assert services.token_revoke(token_id=token.pk, owner=user, actor=user).refund_amount == Decimal("0.00")
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == refunds_before


def test_revoke_twice_refunds_once(auth_client, user):
    token = _token(user)
    assert auth_client.delete(f"/api/v1/tokens/{token.pk}").status_code == 200
    assert_error(auth_client.delete(f"/api/v1/tokens/{token.pk}"), 409, "already_revoked")
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == 1


def test_cannot_revoke_someone_elses_or_unknown_token(auth_client, user):
    other = UserFactory()
    token = _token(other)
    assert_error(auth_client.delete(f"/api/v1/tokens/{token.pk}"), 404, "token_not_found")
    assert_error(auth_client.delete("/api/v1/tokens/999999"), 404)
    token.refresh_from_db()
    assert token.revoked_at is None


def test_staff_force_revoke_gives_no_refund(user):
    staff = UserFactory(is_staff=True)
    token = _token(user)
    revoked = services.token_revoke(token_id=token.pk, actor=staff, refund=False)
    assert revoked.refund_amount == Decimal("0.00")
    assert not Transaction.objects.filter(type=TransactionType.REFUND).exists()
    assert AuditLog.objects.get(action="token.force_revoke").actor == staff
    with pytest.raises(Conflict):
        services.token_revoke(token_id=token.pk, owner=user, actor=user)


def test_expire_due_marks_once(user):
    token = _token(user)
    services.token_activate(token=token, now=timezone.now() - timedelta(hours=25))
    fresh = _token(user)
    assert services.tokens_expire_due() == [token.pk]
    assert services.tokens_expire_due() == []
    fresh.refresh_from_db()
    assert fresh.expired_at is None


# --- concurrency (PostgreSQL)


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_revoke_refunds_once(requires_postgres):
    user = UserFactory()
    token = _token(user)
    results = run_threads(6, lambda: services.token_revoke(token_id=token.pk, owner=user, actor=user))
    assert sum(isinstance(r, AccessToken) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 5
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == 1
    assert_ledger_consistent(user)


@pytest.mark.django_db(transaction=True)
def test_concurrent_purchases_never_overdraw(requires_postgres):
    user = UserFactory()
    fund(user, "90")  # exactly 5 × 18
    results = run_threads(10, lambda: services.token_purchase(user=user, duration_hours=24))
    assert sum(isinstance(r, services.IssuedToken) for r in results) == 5
    assert sum(isinstance(r, InsufficientFunds) for r in results) == 5
    assert AccessToken.objects.filter(user=user).count() == 5
    assert_ledger_consistent(user)
    assert user.balance == Decimal("0.00")


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_use_activates_once(requires_postgres):
    user = UserFactory()
    token = _token(user)
    results = run_threads(
        8, lambda: services.token_activate(token=AccessToken.objects.get(pk=token.pk)).activated_at
    )
    assert len(set(results)) == 1 and None not in results
    assert AuditLog.objects.filter(action="token.activate").count() == 1


@pytest.mark.parametrize("bad", [True, False, "abc", None, 2, 0])
def test_token_price_rejects_non_durations(bad):
    from zenzefi.errors import InvalidInput

    with pytest.raises(InvalidInput):
        services.token_price(bad)


def test_active_token_means_the_same_everywhere(client):
    """Issue 15: one meaning of "active token" (AccessTokenQuerySet.active: activated, not
    expired, not revoked), the same set in the customer API, the dashboard, usage analytics,
    the staff API (list and per-user count) and the admin's state filter (the gauge counts
    `active()` too: tests of monitoring)."""
    from rest_framework.test import APIClient

    from analytics.selectors import usage_for_user

    owner = UserFactory()
    fund(owner, "200")
    waiting = services.token_purchase(user=owner, duration_hours=24).token
    active = services.token_activate(token=services.token_purchase(user=owner, duration_hours=24).token)
    also_active = services.token_activate(token=services.token_purchase(user=owner, duration_hours=1).token)
    expired = services.token_activate(
        token=services.token_purchase(user=owner, duration_hours=1).token,
        now=timezone.now() - timedelta(hours=2),
    )
    revoked = services.token_activate(token=services.token_purchase(user=owner, duration_hours=24).token)
    services.token_revoke(token_id=revoked.pk, owner=owner, actor=owner)
    services.tokens_expire_due()
    expected = {active.pk, also_active.pk}
    assert set(AccessToken.objects.active().values_list("pk", flat=True)) == expected
    assert {waiting.pk, expired.pk, revoked.pk}.isdisjoint(expected)

    api = APIClient()
    api.force_authenticate(owner)
    mine = api.get("/api/v1/tokens/my-tokens", {"active_only": "true"}).json()["results"]
    assert {row["id"] for row in mine} == expected
    assert usage_for_user(user=owner, period="day")["active_tokens"] == len(expected)
    client.force_login(owner)
    assert {t.pk for t in client.get("/account/").context["active_tokens"]} == expected

    staff = UserFactory(is_staff=True, is_superuser=True, language="en")
    api.force_authenticate(staff)
    listed = api.get("/api/v1/admin/tokens", {"user_id": owner.pk, "active_only": "true"}).json()["results"]
    assert {row["id"] for row in listed} == expected
    [row] = api.get("/api/v1/admin/users", {"search": owner.username}).json()["results"]
    assert (row["tokens_active"], row["tokens_usable"]) == (len(expected), len(expected) + 1)  # + waiting
    client.force_login(staff)
    changelist = client.get("/admin/tokens/accesstoken/", {"state": "active"})
    assert {t.pk for t in changelist.context["cl"].result_list} == expected
