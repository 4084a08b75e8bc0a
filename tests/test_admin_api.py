from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from tests.factories import STAFF_API_PERMISSIONS, UserFactory, fund, staff_with
from tests.test_currency_api import assert_error
from tests.token_checks import check_token
from tokens.models import AccessToken
from tokens.services import token_activate, token_purchase, token_revoke

pytestmark = pytest.mark.django_db

USERS = "/api/v1/admin/users"
TOKENS = "/api/v1/admin/tokens"


def user_url(user) -> str:
    return f"{USERS}/{user.pk}"


@pytest.fixture
def staff(db):
    # A fixed name: a random one (Faker) could contain a search term of the tests below ("lic").
    return staff_with(
        *STAFF_API_PERMISSIONS, username="staffer", email="staffer@zenzefi.test", full_name="Staff Member"
    )


@pytest.fixture
def staff_client(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


def buy(user, duration_hours: int = 24):
    return token_purchase(user=user, duration_hours=duration_hours, scope="full")


def ledger_sum(user) -> Decimal:
    return Transaction.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or Decimal("0")


def snapshot(user) -> tuple:
    """Everything a failed admin change must leave untouched."""
    user = User.objects.get(pk=user.pk)
    return (
        user.is_active,
        user.tier,
        user.balance,
        Transaction.objects.filter(user=user).count(),
        AuditLog.objects.filter(action="admin.user_update").count(),
        AuditLog.objects.filter(action="balance.change").count(),
    )


# --- permissions ------------------------------------------------------------------------------


def _requests(target, token_id):
    return [
        ("get", USERS, None),
        ("patch", f"{USERS}/{target.pk}", {"tier": "premium"}),
        ("get", TOKENS, None),
        ("delete", f"{TOKENS}/{token_id}", None),
    ]


@pytest.mark.parametrize("index", range(4))
def test_anonymous_gets_401_and_changes_nothing(api_client, index):
    target = UserFactory()
    fund(target, "100")
    issued = buy(target)
    method, path, body = _requests(target, issued.token.pk)[index]
    before = snapshot(target)
    assert_error(getattr(api_client, method)(path, body, format="json"), 401, "not_authenticated")
    assert snapshot(target) == before
    assert AccessToken.objects.get(pk=issued.token.pk).revoked_at is None


@pytest.mark.parametrize("index", range(4))
def test_customer_gets_403_and_changes_nothing(auth_client, index):
    target = UserFactory()
    fund(target, "100")
    issued = buy(target)
    method, path, body = _requests(target, issued.token.pk)[index]
    before = snapshot(target)
    assert_error(getattr(auth_client, method)(path, body, format="json"), 403, "permission_denied")
    assert snapshot(target) == before
    assert AccessToken.objects.get(pk=issued.token.pk).revoked_at is None


@pytest.mark.parametrize("index", range(4))
def test_staff_gets_200(staff_client, index):
    target = UserFactory()
    fund(target, "100")
    issued = buy(target)
    method, path, body = _requests(target, issued.token.pk)[index]
    response = getattr(staff_client, method)(path, body, format="json")
    assert response.status_code == 200, response.content


def test_staff_by_jwt_bearer(staff):
    from accounts.services import jwt_pair_for

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt_pair_for(staff)['access']}")
    assert client.get(USERS).status_code == 200
    customer = APIClient()
    customer.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt_pair_for(UserFactory())['access']}")
    assert_error(customer.get(USERS), 403, "permission_denied")


# --- GET admin/users --------------------------------------------------------------------------


def test_user_list_shape_and_token_counts(staff_client, staff):
    target = UserFactory(username="carol", email="carol@example.com", full_name="Carol Kent")
    fund(target, "100")
    buy(target)
    revoked = buy(target)
    token_revoke(token_id=revoked.token.pk, actor=target, owner=target)
    response = staff_client.get(USERS, {"search": "carol"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1 and body["skip"] == 0 and body["limit"] == 50
    row = body["results"][0]
    assert {
        "id",
        "username",
        "email",
        "full_name",
        "balance",
        "tier",
        "is_active",
        "is_staff",
        "date_joined",
        "referral_code",
        "tokens_total",
        "tokens_active",
        "tokens_usable",
    } <= set(row)
    assert "password" not in row
    assert row["id"] == target.pk and row["username"] == "carol"
    target.refresh_from_db()
    assert row["balance"] == f"{target.balance:.2f}" == "82.00"  # 100 - 18 - 18 + 18 refund
    # One revoked, one bought and not used yet: usable, but not active (AccessTokenQuerySet.active).
    assert (row["tokens_total"], row["tokens_active"], row["tokens_usable"]) == (2, 0, 1)
    assert row["referral_code"] == target.referral_code and row["tier"] == "free"


@pytest.mark.parametrize("term", ["ALICE", "lic", "wonder.example", "Liddell"])
def test_user_list_search_matches_username_email_full_name(staff_client, term):
    alice = UserFactory(username="alice", email="alice@wonder.example", full_name="Alice Liddell")
    UserFactory(username="bob", email="bob@example.com", full_name="Bob Builder")
    body = staff_client.get(USERS, {"search": term}).json()
    assert [row["id"] for row in body["results"]] == [alice.pk]
    assert body["count"] == 1


def test_user_list_search_without_match_is_empty(staff_client):
    UserFactory()
    assert staff_client.get(USERS, {"search": "no-such-user"}).json() == {
        "count": 0,
        "skip": 0,
        "limit": 50,
        "results": [],
    }


def test_user_list_is_active_filter(staff_client, staff):
    inactive = UserFactory(is_active=False)
    active = UserFactory()
    only_inactive = staff_client.get(USERS, {"is_active": "false"}).json()
    assert [row["id"] for row in only_inactive["results"]] == [inactive.pk]
    only_active = {row["id"] for row in staff_client.get(USERS, {"is_active": "true"}).json()["results"]}
    assert only_active == {active.pk, staff.pk}
    # An empty value is not a boolean: a 400, never a silent "no filter" (issue 14).
    empty = staff_client.get(USERS, {"is_active": ""})
    assert empty.status_code == 400 and empty.json()["code"] == "invalid_boolean"


@pytest.mark.parametrize(
    "params",
    [
        {"is_active": "maybe"},
        {"is_active": "2"},
        {"skip": "-1"},
        {"skip": "x"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
    ],
)
def test_user_list_bad_params_are_400(staff_client, params):
    assert_error(staff_client.get(USERS, params), 400)


def test_user_list_paging_is_newest_first(staff_client, staff):
    made = [UserFactory() for _ in range(5)]
    everyone = [u.pk for u in reversed([staff, *made])]
    page1 = staff_client.get(USERS, {"skip": 0, "limit": 4}).json()
    page2 = staff_client.get(USERS, {"skip": 4, "limit": 4}).json()
    assert page1["count"] == page2["count"] == 6
    assert [r["id"] for r in page1["results"]] + [r["id"] for r in page2["results"]] == everyone
    assert (page2["skip"], page2["limit"]) == (4, 4)


def test_user_list_makes_no_per_row_queries(staff_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(USERS).status_code == 200
        return len(captured)

    for _ in range(2):
        user = UserFactory()
        fund(user, "50")
        buy(user)
    queries()  # warms the staff user's permission cache (two queries, once)
    few = queries()
    for _ in range(6):
        user = UserFactory()
        fund(user, "50")
        buy(user)
        buy(user, 1)
    assert queries() == few


# --- PATCH admin/users/<id> -------------------------------------------------------------------


def test_patch_is_active_and_tier_writes_audit(staff_client, staff):
    target = UserFactory()
    response = staff_client.patch(user_url(target), {"is_active": False, "tier": "premium"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["is_active"] is False and body["tier"] == "premium" and body["id"] == target.pk
    target.refresh_from_db()
    assert target.is_active is False and target.tier == "premium"
    entry = AuditLog.objects.get(action="admin.user_update")
    assert entry.actor == staff and entry.resource_type == "user" and entry.resource_id == str(target.pk)
    assert entry.details["fields"] == ["is_active", "tier"]
    assert entry.details["changes"]["is_active"] == {"from": True, "to": False}
    assert entry.details["changes"]["tier"] == {"from": "free", "to": "premium"}
    assert Transaction.objects.filter(user=target).count() == 0


def test_patch_tier_only(staff_client, staff):
    target = UserFactory()
    assert staff_client.patch(user_url(target), {"tier": "enterprise"}, format="json").status_code == 200
    target.refresh_from_db()
    assert target.tier == "enterprise" and target.is_active is True
    entry = AuditLog.objects.get(action="admin.user_update")
    assert entry.details["fields"] == ["tier"] and entry.actor == staff


def test_patch_reactivates(staff_client):
    target = UserFactory(is_active=False)
    assert staff_client.patch(user_url(target), {"is_active": True}, format="json").status_code == 200
    target.refresh_from_db()
    assert target.is_active is True
    assert AuditLog.objects.get(action="admin.user_update").details["changes"]["is_active"]["to"] is True


def test_patch_without_an_actual_change_writes_no_audit(staff_client):
    target = UserFactory(tier="premium")
    response = staff_client.patch(user_url(target), {"tier": "premium", "is_active": True}, format="json")
    assert response.status_code == 200
    assert not AuditLog.objects.filter(action="admin.user_update").exists()


def test_balance_adjustment_credit_goes_through_the_ledger(staff_client, staff):
    target = UserFactory()
    fund(target, "10")
    body = {"balance_adjustment": {"amount": "25.50", "reason": "  Goodwill for the outage  "}}
    response = staff_client.patch(user_url(target), body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == "35.50"
    target.refresh_from_db()
    assert target.balance == Decimal("35.50") == ledger_sum(target)
    row = Transaction.objects.get(user=target, type=TransactionType.ADJUSTMENT)
    assert row.amount == Decimal("25.50") and row.balance_after == Decimal("35.50")
    assert row.description == "Goodwill for the outage"
    assert Transaction.objects.filter(user=target).count() == 2  # the funding DEPOSIT + one ADJUSTMENT
    entry = AuditLog.objects.get(action="admin.user_update")
    assert entry.actor == staff and entry.details["fields"] == ["balance"]
    change = entry.details["changes"]["balance"]
    assert change["from"] == "10.00" and change["to"] == "35.50" and change["adjustment"] == "25.50"
    assert change["reason"] == "Goodwill for the outage" and change["transaction_id"] == row.pk
    ledger_entry = AuditLog.objects.get(action="balance.change", details__transaction_id=row.pk)
    assert ledger_entry.actor == staff and ledger_entry.details["type"] == "ADJUSTMENT"


def test_balance_adjustment_debit_and_tier_together(staff_client):
    target = UserFactory()
    fund(target, "10")
    body = {"tier": "premium", "balance_adjustment": {"amount": "-10", "reason": "chargeback"}}
    assert staff_client.patch(user_url(target), body, format="json").status_code == 200
    target.refresh_from_db()
    assert target.balance == Decimal("0.00") == ledger_sum(target) and target.tier == "premium"
    assert Transaction.objects.get(user=target, type=TransactionType.ADJUSTMENT).amount == Decimal("-10.00")
    assert AuditLog.objects.get(action="admin.user_update").details["fields"] == ["balance", "tier"]


def test_adjustment_beyond_balance_is_402_and_changes_nothing(staff_client):
    target = UserFactory()
    fund(target, "10")
    before = snapshot(target)
    body = {
        "is_active": False,
        "tier": "enterprise",
        "balance_adjustment": {"amount": "-10.01", "reason": "chargeback"},
    }
    body = assert_error(staff_client.patch(user_url(target), body, format="json"), 402, "insufficient_funds")
    assert "Insufficient balance" in body["detail"]
    assert snapshot(target) == before
    target.refresh_from_db()
    assert target.is_active is True and target.tier == "free" and target.balance == Decimal("10.00")
    assert not Transaction.objects.filter(type=TransactionType.ADJUSTMENT).exists()


@pytest.mark.parametrize("extra", [{}, {"is_active": False}])
@pytest.mark.parametrize("balance", ["1000", "0", 5, None])
def test_direct_balance_is_400_and_changes_nothing(staff_client, balance, extra):
    target = UserFactory()
    fund(target, "10")
    before = snapshot(target)
    response = staff_client.patch(user_url(target), {"balance": balance, **extra}, format="json")
    body = assert_error(response, 400, "balance_read_only")
    assert "balance_adjustment" in body["detail"]
    assert snapshot(target) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tier": "gold"},
        {"tier": None},
        {"is_active": None},
        {"is_active": "sometimes"},
        {"balance_adjustment": None},
        {"balance_adjustment": "5"},
        {"balance_adjustment": {"amount": "5"}},
        {"balance_adjustment": {"amount": "5", "reason": ""}},
        {"balance_adjustment": {"amount": "5", "reason": "   "}},
        {"balance_adjustment": {"reason": "no amount"}},
        {"balance_adjustment": {"amount": "0", "reason": "zero"}},
        {"balance_adjustment": {"amount": "1.234", "reason": "three decimals"}},
        {"balance_adjustment": {"amount": "abc", "reason": "x"}},
        {"balance_adjustment": {"amount": "NaN", "reason": "x"}},
        {"balance_adjustment": {"amount": "10000000", "reason": "too much"}},
        {"is_staff": True},
        {"email": "new@example.com"},
        {"tier": "premium", "is_superuser": True},
    ],
)
def test_bad_patch_bodies_are_400_and_change_nothing(staff_client, body):
    target = UserFactory()
    fund(target, "10")
    before = snapshot(target)
    assert_error(staff_client.patch(user_url(target), body, format="json"), 400)
    assert snapshot(target) == before
    target.refresh_from_db()
    assert target.is_staff is False and target.is_superuser is False and target.email.endswith("example.com")


def test_patch_unknown_user_is_404(staff_client):
    assert_error(
        staff_client.patch(f"{USERS}/999999", {"tier": "premium"}, format="json"), 404, "user_not_found"
    )


def test_staff_cannot_deactivate_themselves(staff_client, staff):
    response = staff_client.patch(user_url(staff), {"is_active": False, "tier": "premium"}, format="json")
    assert_error(response, 400, "cannot_deactivate_self")
    staff.refresh_from_db()
    assert staff.is_active is True and staff.tier == "free"
    assert not AuditLog.objects.filter(action="admin.user_update").exists()
    # Other changes to one's own account are allowed.
    assert staff_client.patch(user_url(staff), {"tier": "premium"}, format="json").status_code == 200


def test_deactivation_stops_tokens_at_once(staff_client, django_capture_on_commit_callbacks):
    target = UserFactory()
    fund(target, "100")
    issued = buy(target)
    assert check_token(issued.plaintext).valid  # now cached as valid
    assert check_token(issued.plaintext).valid
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.patch(user_url(target), {"is_active": False}, format="json")
    assert response.status_code == 200
    check = check_token(issued.plaintext)
    assert not check.valid and check.reason == "inactive_user"
    # Reactivating drops the (negative) entries too: the token works again at once.
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.patch(user_url(target), {"is_active": True}, format="json").status_code == 200
    assert check_token(issued.plaintext).valid


def test_deactivating_a_user_without_tokens(staff_client, django_capture_on_commit_callbacks):
    target = UserFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert staff_client.patch(user_url(target), {"is_active": False}, format="json").status_code == 200
    assert len(callbacks) == 1
    target.refresh_from_db()
    assert target.is_active is False


def test_failed_deactivation_schedules_nothing(staff_client, django_capture_on_commit_callbacks):
    target = UserFactory()
    fund(target, "20")
    issued = buy(target)
    assert check_token(issued.plaintext).valid
    body = {"is_active": False, "balance_adjustment": {"amount": "-50", "reason": "x"}}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert_error(staff_client.patch(user_url(target), body, format="json"), 402)
    assert callbacks == []
    assert check_token(issued.plaintext).valid


# --- GET admin/tokens -------------------------------------------------------------------------


def test_token_list_spans_users_and_never_shows_secrets(staff_client):
    alice, bob = UserFactory(), UserFactory()
    fund(alice, "100")
    fund(bob, "100")
    issued = [buy(alice), buy(alice, 1), buy(bob)]
    response = staff_client.get(TOKENS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [row["id"] for row in body["results"]] == [i.token.pk for i in reversed(issued)]
    raw = response.content.decode()
    for item in issued:
        assert item.plaintext not in raw
        assert item.token.digest not in raw
    for row in body["results"]:
        assert "token" not in row and "digest" not in row
        assert row["prefix"] in {i.token.prefix for i in issued}
    row = body["results"][0]
    assert row["user_id"] == bob.pk and row["username"] == bob.username
    assert row["status"] == "not_activated" and row["cost"] == "18.00"


def test_token_list_filters_by_user_and_active_only(staff_client):
    alice, bob = UserFactory(), UserFactory()
    fund(alice, "100")
    fund(bob, "100")
    kept, gone, other = buy(alice), buy(alice), buy(bob)
    token_revoke(token_id=gone.token.pk, actor=alice, owner=alice)
    waiting = buy(alice)  # bought, never used: not active
    token_activate(token=kept.token)
    token_activate(token=other.token)
    mine = staff_client.get(TOKENS, {"user_id": alice.pk}).json()
    assert {row["id"] for row in mine["results"]} == {kept.token.pk, gone.token.pk, waiting.token.pk}
    active = staff_client.get(TOKENS, {"user_id": alice.pk, "active_only": "true"}).json()
    assert [row["id"] for row in active["results"]] == [kept.token.pk]
    everyone_active = staff_client.get(TOKENS, {"active_only": "true"}).json()
    assert {row["id"] for row in everyone_active["results"]} == {kept.token.pk, other.token.pk}
    assert staff_client.get(TOKENS, {"user_id": 999999}).json()["count"] == 0


def test_token_list_paging(staff_client):
    user = UserFactory()
    fund(user, "100")
    ids = [buy(user, 1).token.pk for _ in range(5)][::-1]
    page = staff_client.get(TOKENS, {"skip": 2, "limit": 2}).json()
    assert page["count"] == 5 and [row["id"] for row in page["results"]] == ids[2:4]


@pytest.mark.parametrize(
    "params",
    [
        {"user_id": "abc"},
        {"user_id": "1.5"},
        {"user_id": "0"},
        {"user_id": "-3"},
        {"active_only": "perhaps"},
        {"limit": "0"},
        {"skip": "-2"},
    ],
)
def test_token_list_bad_params_are_400(staff_client, params):
    assert_error(staff_client.get(TOKENS, params), 400)


# --- DELETE admin/tokens/<id> -----------------------------------------------------------------


def test_force_revoke_gives_no_refund_and_second_is_409(
    staff_client, staff, django_capture_on_commit_callbacks
):
    target = UserFactory()
    fund(target, "100")
    issued = buy(target)
    assert check_token(issued.plaintext).valid
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.delete(f"{TOKENS}/{issued.token.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == issued.token.pk and body["refund"] == "0.00" and body["revoked_at"]
    token = AccessToken.objects.get(pk=issued.token.pk)
    assert token.revoked_at is not None and token.refund_amount == Decimal("0.00")
    target.refresh_from_db()
    assert target.balance == Decimal("82.00") == ledger_sum(target)
    assert not Transaction.objects.filter(type=TransactionType.REFUND).exists()
    entry = AuditLog.objects.get(action="token.force_revoke")
    assert entry.actor == staff and entry.resource_id == str(token.pk)
    check = check_token(issued.plaintext)
    assert not check.valid and check.reason == "revoked"

    assert_error(staff_client.delete(f"{TOKENS}/{issued.token.pk}"), 409, "already_revoked")
    target.refresh_from_db()
    assert target.balance == Decimal("82.00")
    assert AuditLog.objects.filter(action="token.force_revoke").count() == 1


def test_force_revoke_of_a_token_revoked_by_its_owner_is_409(staff_client):
    target = UserFactory()
    fund(target, "100")
    issued = buy(target)
    token_revoke(token_id=issued.token.pk, actor=target, owner=target)
    assert_error(staff_client.delete(f"{TOKENS}/{issued.token.pk}"), 409, "already_revoked")
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == 1


def test_force_revoke_unknown_token_is_404(staff_client):
    assert_error(staff_client.delete(f"{TOKENS}/999999"), 404, "token_not_found")
