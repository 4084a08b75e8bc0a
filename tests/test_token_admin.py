from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db.models import Sum
from django.utils import timezone

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from tests.factories import UserFactory, fund
from tokens.models import AccessToken
from tokens.services import token_activate, token_purchase, token_revoke

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/tokens/accesstoken/"


def change_url(token) -> str:
    return f"{CHANGELIST}{token.pk}/change/"


@pytest.fixture
def superuser(db):
    # These tests read the admin in English (the staff member's own language choice).
    return UserFactory(is_staff=True, is_superuser=True, language="en")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def customer(db):
    user = UserFactory(username="tokenowner", email="owner@example.com")
    fund(user, "100")
    return user


def buy(user, duration_hours: int = 24):
    return token_purchase(user=user, duration_hours=duration_hours, scope="full")


@pytest.fixture
def tokens_by_state(customer):
    """One token in each state: not activated, active, expired, revoked."""
    fresh = buy(customer).token
    active = token_activate(token=buy(customer).token)
    expired = token_activate(token=buy(customer, 1).token, now=timezone.now() - timedelta(hours=2))
    revoked = buy(customer).token
    token_revoke(token_id=revoked.pk, actor=customer, owner=customer)
    return {"not_activated": fresh, "active": active, "expired": expired, "revoked": revoked}


def action(client, name: str, tokens, **kwargs):
    data = {
        "action": name,
        "_selected_action": [str(t.pk) for t in tokens],
        "index": "0",
        "select_across": "0",
    }
    return client.post(CHANGELIST, data, **kwargs)


def ledger_sum(user) -> Decimal:
    return Transaction.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or Decimal("0")


def test_changelist_renders_and_never_shows_digest(admin_client, tokens_by_state):
    page = admin_client.get(CHANGELIST).content.decode()
    for token in tokens_by_state.values():
        assert token.prefix in page
        assert token.digest not in page
    for label in ("Not activated", "Active", "Expired", "Revoked", "Revoke with refund", "Force revoke"):
        assert label in page


@pytest.mark.parametrize("state", ["not_activated", "active", "expired", "revoked"])
def test_state_filter(admin_client, tokens_by_state, state):
    response = admin_client.get(CHANGELIST, {"state": state})
    assert response.status_code == 200
    page = response.content.decode()
    for name, token in tokens_by_state.items():
        assert (token.prefix in page) == (name == state), name


@pytest.mark.parametrize(
    "params",
    [
        {"scope__exact": "full"},
        {"duration_hours": "24"},
        {"auto_renew__exact": "0"},
        {"q": "tokenowner"},
        {"q": "owner@example.com"},
    ],
)
def test_other_filters_and_search_render(admin_client, tokens_by_state, params):
    response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    assert tokens_by_state["not_activated"].prefix in response.content.decode()


def test_search_by_prefix(admin_client, tokens_by_state):
    wanted = tokens_by_state["active"]
    page = admin_client.get(CHANGELIST, {"q": wanted.prefix}).content.decode()
    assert wanted.prefix in page
    assert tokens_by_state["expired"].prefix not in page


def test_change_page_is_read_only_except_auto_renew(admin_client, tokens_by_state):
    token = tokens_by_state["active"]
    page = admin_client.get(change_url(token)).content.decode()
    assert token.digest not in page
    assert 'name="auto_renew"' in page
    for field in (
        "digest",
        "prefix",
        "cost",
        "duration_hours",
        "scope",
        "revoked_at",
        "activated_at",
        "user",
    ):
        assert f'name="{field}"' not in page
    response = admin_client.post(
        change_url(token), {"auto_renew": "on", "cost": "0", "duration_hours": "720", "_save": "Save"}
    )
    assert response.status_code == 302
    after = AccessToken.objects.get(pk=token.pk)
    assert after.auto_renew is True
    assert (after.cost, after.duration_hours, after.digest, after.activated_at) == (
        token.cost,
        token.duration_hours,
        token.digest,
        token.activated_at,
    )
    entry = AuditLog.objects.get(action="admin.token_update")
    assert entry.resource_id == str(token.pk) and entry.details["auto_renew"] is True


def test_no_add_and_no_delete(admin_client, tokens_by_state):
    token = tokens_by_state["active"]
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{token.pk}/delete/", {"post": "yes"}).status_code == 403
    response = action(admin_client, "delete_selected", [token], follow=True)
    assert response.status_code == 200
    assert AccessToken.objects.filter(pk=token.pk).exists()


def test_revoke_with_refund_action(admin_client, superuser, customer, tokens_by_state):
    selected = [tokens_by_state["not_activated"], tokens_by_state["active"], tokens_by_state["revoked"]]
    refunds_before = Transaction.objects.filter(type=TransactionType.REFUND).count()
    response = action(admin_client, "revoke_with_refund", selected, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Revoked 2 tokens;" in page
    assert "Skipped 1 token that was already revoked" in page

    fresh = AccessToken.objects.get(pk=tokens_by_state["not_activated"].pk)
    active = AccessToken.objects.get(pk=tokens_by_state["active"].pk)
    assert fresh.revoked_at and active.revoked_at
    assert fresh.refund_amount == Decimal("18.00")  # never activated: full cost
    assert Decimal("0") < active.refund_amount <= Decimal("18.00")
    new_refunds = Transaction.objects.filter(type=TransactionType.REFUND).order_by("id")[refunds_before:]
    assert sorted(r.amount for r in new_refunds) == sorted([fresh.refund_amount, active.refund_amount])
    assert {r.reference for r in new_refunds} == {f"token:{fresh.pk}", f"token:{active.pk}"}
    customer.refresh_from_db()
    assert customer.balance == ledger_sum(customer)
    assert AuditLog.objects.filter(action="token.revoke", actor=superuser).count() == 2


def test_force_revoke_action_gives_no_refund(admin_client, superuser, customer, tokens_by_state):
    customer.refresh_from_db()
    balance = customer.balance
    refunds_before = Transaction.objects.filter(type=TransactionType.REFUND).count()
    selected = [tokens_by_state["not_activated"], tokens_by_state["active"], tokens_by_state["expired"]]
    response = action(admin_client, "force_revoke", selected, follow=True)
    page = response.content.decode()
    assert "Revoked 3 tokens; no refund." in page
    for token in selected:
        after = AccessToken.objects.get(pk=token.pk)
        assert after.revoked_at is not None and after.refund_amount == Decimal("0.00")
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == refunds_before
    customer.refresh_from_db()
    assert customer.balance == balance == ledger_sum(customer)
    assert AuditLog.objects.filter(action="token.force_revoke", actor=superuser).count() == 3


def test_action_on_only_revoked_tokens_reports_skips(admin_client, tokens_by_state):
    response = action(admin_client, "force_revoke", [tokens_by_state["revoked"]], follow=True)
    page = response.content.decode()
    assert "Skipped 1 token that was already revoked" in page
    assert "Revoked 1 token;" not in page
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == 1  # the owner's own revoke


def test_staff_without_revoke_permission_cannot_run_actions(client, customer, tokens_by_state):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="view_accesstoken"),
        Permission.objects.get(codename="change_accesstoken"),
    )
    client.force_login(staff)
    page = client.get(CHANGELIST).content.decode()
    assert tokens_by_state["active"].prefix in page
    assert "revoke_with_refund" not in page and "force_revoke" not in page

    targets = [tokens_by_state["not_activated"], tokens_by_state["active"]]
    refunds_before = Transaction.objects.filter(type=TransactionType.REFUND).count()
    for name in ("revoke_with_refund", "force_revoke"):
        response = action(client, name, targets)
        assert response.status_code in (200, 302)
    for token in targets:
        assert AccessToken.objects.get(pk=token.pk).revoked_at is None
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == refunds_before

    staff.user_permissions.add(Permission.objects.get(codename="revoke_token"))
    staff = type(staff).objects.get(pk=staff.pk)  # drop the permission cache
    client.force_login(staff)
    assert "revoke_with_refund" in client.get(CHANGELIST).content.decode()
    action(client, "force_revoke", targets)
    assert all(AccessToken.objects.get(pk=t.pk).revoked_at for t in targets)


def test_non_staff_is_sent_to_login(client, tokens_by_state):
    client.force_login(UserFactory())
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_auto_renew_on_a_revoked_token_is_refused_by_the_renewals_service(admin_client, tokens_by_state):
    token = tokens_by_state["revoked"]
    response = admin_client.post(change_url(token), {"auto_renew": "on", "_save": "Save"}, follow=True)
    assert response.status_code == 200
    assert "This token is revoked or expired." in [str(m) for m in response.context["messages"]]
    token.refresh_from_db()
    assert token.auto_renew is False
    assert not AuditLog.objects.filter(action__in=["admin.token_update", "token.auto_renew"]).exists()


def test_admin_auto_renew_is_audited_as_staff(admin_client, superuser, tokens_by_state):
    token = tokens_by_state["not_activated"]
    assert admin_client.post(change_url(token), {"auto_renew": "on", "_save": "Save"}).status_code == 302
    token.refresh_from_db()
    assert token.auto_renew is True
    [entry] = AuditLog.objects.filter(action="admin.token_update")
    assert entry.actor == superuser
    assert {key: entry.details[key] for key in ("prefix", "auto_renew", "owner_id", "by")} == {
        "prefix": token.prefix,
        "auto_renew": True,
        "owner_id": token.user_id,
        "by": superuser.username,
    }
