"""Staff REST endpoints check the Django permission the admin checks for the same act (SPEC §13,
issue 11 item 1). Every staff endpoint: no permission → 403 `permission_denied` and nothing
written; exactly its one permission → success; a superuser → success."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditLog
from bundles.models import TokenBundle
from currency.models import Transaction
from payments.models import Payment, PaymentStatus
from tests.factories import STAFF_API_PERMISSIONS, UserFactory, fund, staff_with
from tests.payments_support import start_payment
from tokens.models import AccessToken
from tokens.services import token_purchase

pytestmark = pytest.mark.django_db


@dataclass
class World:
    target: User
    token: AccessToken
    payment: Payment
    bundle: TokenBundle


@pytest.fixture
def world(db) -> World:
    target = UserFactory()
    fund(target, "100")
    token = token_purchase(user=target, duration_hours=24, scope="full").token
    payment = start_payment(target, "30")
    bundle = TokenBundle.objects.filter(is_active=True).order_by("pk").first()
    return World(target=target, token=token, payment=payment, bundle=bundle)


def state() -> tuple:
    """Everything a refused staff call must leave as it was."""
    return (
        list(User.objects.order_by("pk").values_list("pk", "is_active", "tier", "balance")),
        list(Transaction.objects.order_by("pk").values_list("pk", "amount")),
        AuditLog.objects.count(),
        list(AccessToken.objects.order_by("pk").values_list("pk", "revoked_at", "refund_amount")),
        list(Payment.objects.order_by("pk").values_list("pk", "status")),
        list(TokenBundle.objects.order_by("pk").values()),
    )


NEW_BUNDLE = {"name": "Staff bundle", "token_count": 2, "duration_hours": 24, "discount_percent": 5}

# (name, permission, method, path, body, success status)
CASES = [
    ("users.list", "accounts.view_user", "get", "/api/v1/admin/users", None, 200),
    (
        "users.deactivate",
        "accounts.change_user",
        "patch",
        "/api/v1/admin/users/{target}",
        {"is_active": False},
        200,
    ),
    ("users.tier", "accounts.change_user", "patch", "/api/v1/admin/users/{target}", {"tier": "premium"}, 200),
    (
        "users.adjust",
        "accounts.adjust_balance",
        "patch",
        "/api/v1/admin/users/{target}",
        {"balance_adjustment": {"amount": "500.00", "reason": "goodwill"}},
        200,
    ),
    ("tokens.list", "tokens.view_accesstoken", "get", "/api/v1/admin/tokens", None, 200),
    ("tokens.force_revoke", "tokens.revoke_token", "delete", "/api/v1/admin/tokens/{token}", None, 200),
    (
        "payments.simulate",
        "payments.complete_payment",
        "post",
        "/api/v1/currency/admin/simulate-payment/{payment}",
        None,
        200,
    ),
    ("bundles.create", "bundles.add_tokenbundle", "post", "/api/v1/bundles/", NEW_BUNDLE, 201),
    (
        "bundles.change",
        "bundles.change_tokenbundle",
        "patch",
        "/api/v1/bundles/{bundle}",
        {"discount_percent": 1},
        200,
    ),
    ("bundles.delete", "bundles.delete_tokenbundle", "delete", "/api/v1/bundles/{bundle}", None, 200),
    (
        "analytics.global",
        "analytics.view_dashboard",
        "get",
        "/api/v1/analytics/admin/global-stats",
        None,
        200,
    ),
]
IDS = [case[0] for case in CASES]
WRITES = {"users.deactivate", "users.tier", "users.adjust", "tokens.force_revoke", "payments.simulate"} | {
    "bundles.create",
    "bundles.change",
    "bundles.delete",
}


def call(user: User, world: World, case) -> object:
    _, _, method, path, body, _ = case
    client = APIClient()
    client.force_authenticate(user)
    url = path.format(
        target=world.target.pk, token=world.token.pk, payment=world.payment.pk, bundle=world.bundle.pk
    )
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_staff_without_permissions_gets_403_and_nothing_changes(world, case):
    staff = staff_with()
    before = state()
    response = call(staff, world, case)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    assert state() == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_staff_with_every_other_permission_gets_403(world, case):
    staff = staff_with(*[perm for perm in STAFF_API_PERMISSIONS if perm != case[1]])
    before = state()
    response = call(staff, world, case)
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert state() == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_staff_with_exactly_the_permission_succeeds(world, case):
    staff = staff_with(case[1])
    before = state()
    response = call(staff, world, case)
    assert response.status_code == case[5], response.content
    if case[0] in WRITES:
        assert state() != before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_superuser_succeeds(world, case):
    response = call(UserFactory(is_staff=True, is_superuser=True), world, case)
    assert response.status_code == case[5], response.content


def test_permission_without_is_staff_is_still_refused(world):
    user = staff_with("accounts.adjust_balance")
    User.objects.filter(pk=user.pk).update(is_staff=False)
    user.refresh_from_db()
    before = state()
    response = call(user, world, CASES[3])
    assert response.status_code == 403 and state() == before


def test_adjustment_with_a_change_needs_both_permissions(world):
    body = {"tier": "premium", "balance_adjustment": {"amount": "5.00", "reason": "x"}}
    case = ("both", "", "patch", "/api/v1/admin/users/{target}", body, 200)
    for perms in (("accounts.change_user",), ("accounts.adjust_balance",)):
        staff = staff_with(*perms)
        before = state()
        assert call(staff, world, case).status_code == 403
        assert state() == before
    assert call(staff_with("accounts.change_user", "accounts.adjust_balance"), world, case).status_code == 200
    world.target.refresh_from_db()
    assert world.target.tier == "premium" and world.target.balance == Decimal("5.00") + Decimal(
        "100"
    ) - Decimal("18.00")


def test_simulate_effects_with_the_permission(world):
    response = call(staff_with("payments.complete_payment"), world, CASES[6])
    assert response.status_code == 200
    world.payment.refresh_from_db()
    assert world.payment.status == PaymentStatus.SUCCEEDED


# --- inactive bundles are visible only with bundles.view_tokenbundle ------------------------------


def test_inactive_bundles_need_the_view_permission(world):
    TokenBundle.objects.filter(pk=world.bundle.pk).update(is_active=False)
    for user, sees in ((staff_with(), False), (staff_with("bundles.view_tokenbundle"), True)):
        client = APIClient()
        client.force_authenticate(user)
        listed = client.get("/api/v1/bundles/", {"include_inactive": "true"}).json()
        ids = {row["id"] for row in (listed["results"] if isinstance(listed, dict) else listed)}
        assert (world.bundle.pk in ids) is sees
        assert client.get(f"/api/v1/bundles/{world.bundle.pk}").status_code == (200 if sees else 404)


# --- the admin's extra refusals, mirrored -------------------------------------------------------


def test_non_superuser_cannot_change_a_superuser_on_either_path(client, world):
    boss = UserFactory(is_staff=True, is_superuser=True)
    staff = staff_with("accounts.view_user", "accounts.change_user")
    before = state()
    response = call(
        staff, world, ("x", "", "patch", f"/api/v1/admin/users/{boss.pk}", {"is_active": False}, 0)
    )
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert state() == before
    client.force_login(staff)
    page = client.post(
        f"/admin/accounts/user/{boss.pk}/change/", {"username": boss.username, "is_active": ""}
    )
    assert page.status_code == 403
    boss.refresh_from_db()
    assert boss.is_active
    # A superuser may.
    assert (
        call(
            UserFactory(is_staff=True, is_superuser=True),
            world,
            ("x", "", "patch", f"/api/v1/admin/users/{boss.pk}", {"is_active": False}, 0),
        ).status_code
        == 200
    )


def test_staff_cannot_grant_themselves_rights_in_the_admin(client):
    staff = staff_with("accounts.view_user", "accounts.change_user")
    client.force_login(staff)
    page = client.get(f"/admin/accounts/user/{staff.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="is_superuser"' not in html and 'name="user_permissions"' not in html
    # Nobody deactivates themselves: the accounts service refuses it (a form error, nothing
    # written); tests/test_admin.py::test_staff_cannot_deactivate_themselves_in_the_admin.


# --- the admin uses the same codenames --------------------------------------------------------


def test_admin_adjust_balance_uses_the_same_permission(client, world):
    url = f"/admin/accounts/user/{world.target.pk}/adjust-balance/"
    client.force_login(staff_with("accounts.view_user", "accounts.change_user"))
    before = state()
    assert client.post(url, {"amount": "5", "reason": "x"}).status_code == 403
    assert state() == before
    client.force_login(staff_with("accounts.adjust_balance"))
    assert client.post(url, {"amount": "5", "reason": "x"}).status_code == 302
    world.target.refresh_from_db()
    assert world.target.balance == Decimal("87.00")


def _admin_action(client, url: str, name: str, pk: int):
    return client.post(
        url, {"action": name, "_selected_action": [str(pk)], "index": "0", "select_across": "0"}
    )


def test_admin_force_revoke_uses_the_same_permission(client, world):
    url = "/admin/tokens/accesstoken/"
    client.force_login(staff_with("tokens.view_accesstoken"))
    _admin_action(client, url, "force_revoke", world.token.pk)
    world.token.refresh_from_db()
    assert world.token.revoked_at is None
    client.force_login(staff_with("tokens.view_accesstoken", "tokens.revoke_token"))
    _admin_action(client, url, "force_revoke", world.token.pk)
    world.token.refresh_from_db()
    assert world.token.revoked_at is not None and world.token.refund_amount in (None, Decimal("0.00"))


def test_admin_payment_completion_uses_the_same_permission(client, world):
    url = "/admin/payments/payment/"
    client.force_login(staff_with("payments.view_payment"))
    _admin_action(client, url, "mark_succeeded_mock", world.payment.pk)
    world.payment.refresh_from_db()
    assert world.payment.status == PaymentStatus.PENDING
    client.force_login(staff_with("payments.view_payment", "payments.complete_payment"))
    _admin_action(client, url, "mark_succeeded_mock", world.payment.pk)
    world.payment.refresh_from_db()
    assert world.payment.status == PaymentStatus.SUCCEEDED


def test_admin_bundle_deactivation_uses_the_delete_permission(client, world):
    url = "/admin/bundles/tokenbundle/"
    client.force_login(staff_with("bundles.view_tokenbundle", "bundles.change_tokenbundle"))
    _admin_action(client, url, "deactivate_selected", world.bundle.pk)
    world.bundle.refresh_from_db()
    assert world.bundle.is_active
    client.force_login(staff_with("bundles.view_tokenbundle", "bundles.delete_tokenbundle"))
    _admin_action(client, url, "deactivate_selected", world.bundle.pk)
    world.bundle.refresh_from_db()
    assert not world.bundle.is_active


def test_admin_dashboard_uses_the_same_permission(client):
    client.force_login(staff_with())
    assert client.get("/admin/analytics/").status_code == 403
    assert b"/admin/analytics/" not in client.get("/admin/").content
    client.force_login(staff_with("analytics.view_dashboard"))
    assert client.get("/admin/analytics/").status_code == 200


def test_permission_codenames_exist():
    for perm in STAFF_API_PERMISSIONS:
        app_label, codename = perm.split(".")
        assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), perm
