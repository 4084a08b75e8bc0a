from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditLog
from currency.models import Transaction, TransactionType
from tests.factories import UserFactory, fund
from tests.token_checks import check_token

pytestmark = pytest.mark.django_db


def adjust_url(user):
    return f"/admin/accounts/user/{user.pk}/adjust-balance/"


@pytest.fixture
def superuser(db):
    # These tests read the admin in English (the staff member's own language choice).
    return UserFactory(is_staff=True, is_superuser=True, language="en")


def test_superuser_adjusts_balance_through_the_ledger(client, superuser):
    target = UserFactory()
    client.force_login(superuser)
    response = client.post(adjust_url(target), {"amount": "42.50", "reason": "Goodwill for outage"})
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.balance == Decimal("42.50")
    row = Transaction.objects.get(user=target)
    assert row.type == TransactionType.ADJUSTMENT and row.description == "Goodwill for outage"
    entry = AuditLog.objects.get(action="balance.change", resource_id=str(target.pk))
    assert entry.actor == superuser and entry.details["reason"] == "Goodwill for outage"


def test_adjustment_debit_beyond_balance_is_a_form_error(client, superuser):
    target = UserFactory()
    fund(target, "10")
    client.force_login(superuser)
    response = client.post(adjust_url(target), {"amount": "-10.01", "reason": "chargeback"})
    assert response.status_code == 200
    assert b"Insufficient balance" in response.content
    target.refresh_from_db()
    assert target.balance == Decimal("10.00")
    assert Transaction.objects.filter(user=target).count() == 1


@pytest.mark.parametrize(
    "data",
    [{"amount": "5", "reason": ""}, {"amount": "0", "reason": "x"}, {"amount": "1.234", "reason": "x"}],
)
def test_adjustment_requires_reason_and_valid_amount(client, superuser, data):
    target = UserFactory()
    client.force_login(superuser)
    response = client.post(adjust_url(target), data)
    assert response.status_code == 200
    assert Transaction.objects.count() == 0


def test_staff_without_permission_cannot_adjust(client):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    target = UserFactory()
    client.force_login(staff)
    assert client.get(adjust_url(target)).status_code == 403
    assert client.post(adjust_url(target), {"amount": "5", "reason": "x"}).status_code == 403
    assert Transaction.objects.count() == 0
    staff.user_permissions.add(Permission.objects.get(codename="adjust_balance"))
    staff = type(staff).objects.get(pk=staff.pk)  # drop the permission cache
    client.force_login(staff)
    assert client.post(adjust_url(target), {"amount": "5", "reason": "x"}).status_code == 302
    assert Transaction.objects.get(user=target).amount == Decimal("5.00")


def test_non_staff_is_sent_to_login(client):
    client.force_login(UserFactory())
    response = client.get(adjust_url(UserFactory()))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_pages_render_and_ledger_is_read_only(client, superuser):
    target = UserFactory()
    fund(target, "3")
    client.force_login(superuser)
    for url in [
        "/admin/accounts/user/",
        "/admin/accounts/user/?q=" + target.email,
        f"/admin/accounts/user/{target.pk}/change/",
        "/admin/accounts/user/add/",
        "/admin/currency/transaction/",
        "/admin/audit/auditlog/",
        "/admin/audit/auditlog/?suspicious__exact=1",
    ]:
        assert client.get(url).status_code == 200, url
    row = Transaction.objects.get(user=target)
    assert client.get("/admin/currency/transaction/add/").status_code == 403
    assert client.post(f"/admin/currency/transaction/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Transaction.objects.filter(pk=row.pk).exists()
    entry = AuditLog.objects.first()
    assert client.post(f"/admin/audit/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403


def test_balance_field_is_not_editable_in_change_form(client, superuser):
    target = UserFactory()
    client.force_login(superuser)
    page = client.get(f"/admin/accounts/user/{target.pk}/change/").content.decode()
    assert 'name="balance"' not in page
    assert "Adjust balance" in page


def test_admin_user_edit_is_audited_keeps_money_and_deactivation_stops_tokens(
    client, superuser, django_capture_on_commit_callbacks
):
    from tokens import services as token_services

    target = UserFactory()
    fund(target, "100")
    issued = token_services.token_purchase(user=target, duration_hours=1)
    assert check_token(issued.plaintext).valid  # now cached as valid
    client.force_login(superuser)
    page = client.get(f"/admin/accounts/user/{target.pk}/change/")
    form = page.context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions")
    }
    data.update(
        {
            "is_active": "",  # unticked: deactivate
            "date_joined_0": target.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": target.date_joined.strftime("%H:%M:%S"),
            "referred_by": "",
            "last_login_0": "",
            "last_login_1": "",
        }
    )
    data = {k: v for k, v in data.items() if k not in ("date_joined", "last_login", "password")}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/accounts/user/{target.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    target.refresh_from_db()
    assert target.is_active is False and target.balance == Decimal("99.00")  # 100 − a 1 h token
    entry = AuditLog.objects.get(action="admin.user_update", resource_id=str(target.pk))
    assert entry.actor == superuser and "is_active" in entry.details["fields"]
    assert check_token(issued.plaintext).reason == "inactive_user"


# --- every admin write to a user goes through accounts.services.user_admin_update (issue 15) ---


def change_form_data(client, target, **overrides) -> dict:
    """What the admin's change form posts back unchanged, with `overrides` applied."""
    form = client.get(f"/admin/accounts/user/{target.pk}/change/").context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name in form.fields and not form.fields[name].disabled
    }
    for name in ("groups", "user_permissions"):
        if name in data:
            data[name] = [str(getattr(item, "pk", item)) for item in data[name]]
    for name, value in list(data.items()):
        if isinstance(value, bool):
            data[name] = "on" if value else ""  # a ticked box posts "on", an unticked one nothing
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data.update(overrides)
    return {name: value for name, value in data.items() if value != ""}


def test_staff_cannot_deactivate_themselves_in_the_admin(client):
    from tests.factories import staff_with

    staff = staff_with("accounts.view_user", "accounts.change_user", language="en", full_name="Before")
    client.force_login(staff)
    data = change_form_data(client, staff, full_name="After")
    data.pop("is_active", None)  # unticked: deactivate
    response = client.post(f"/admin/accounts/user/{staff.pk}/change/", data)
    assert response.status_code == 200  # the form again, with the service's refusal
    assert "You cannot deactivate your own account." in response.content.decode()
    assert "is_active" in response.context["adminform"].form.errors
    staff.refresh_from_db()
    assert staff.is_active is True and staff.full_name == "Before"  # nothing written
    assert not AuditLog.objects.filter(action__in=["admin.user_update", "auth.sessions_revoked"]).exists()


def test_admin_change_form_writes_through_the_staff_service_with_one_audit_entry(
    client, superuser, django_capture_on_commit_callbacks
):
    target = UserFactory(full_name="Old Name", tier="free")
    fund(target, "5")
    client.force_login(superuser)
    data = change_form_data(client, target, full_name="New Name", tier="premium")
    data.pop("is_active", None)  # deactivate
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/accounts/user/{target.pk}/change/", data)
    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.full_name, target.tier, target.is_active) == ("New Name", "premium", False)
    assert target.balance == Decimal("5.00")
    [entry] = AuditLog.objects.filter(action="admin.user_update")
    assert entry.actor == superuser and entry.details["fields"] == ["full_name", "is_active", "tier"]
    assert entry.details["changes"]["tier"] == {"from": "free", "to": "premium"}
    assert entry.details["changes"]["is_active"] == {"from": True, "to": False}
    # As after PATCH admin/users/{id}: a deactivation ends the user's API sessions.
    assert AuditLog.objects.filter(action="auth.sessions_revoked", resource_id=str(target.pk)).exists()


def test_admin_adjustment_and_staff_api_adjustment_write_the_same_rows(client, superuser):
    from rest_framework.test import APIClient

    via_admin, via_api = UserFactory(), UserFactory()
    client.force_login(superuser)
    assert client.post(adjust_url(via_admin), {"amount": "12.50", "reason": " Goodwill "}).status_code == 302
    api = APIClient()
    api.force_authenticate(superuser)
    body = {"balance_adjustment": {"amount": "12.50", "reason": " Goodwill "}}
    assert api.patch(f"/api/v1/admin/users/{via_api.pk}", body, format="json").status_code == 200

    def written(user) -> tuple:
        row = Transaction.objects.get(user=user)
        entries = AuditLog.objects.filter(resource_type="user", resource_id=str(user.pk)).order_by("pk")
        return (
            (row.type, row.amount, row.balance_after, row.description, row.reference),
            [(e.action, e.actor_id, sorted(e.details)) for e in entries],
        )

    assert written(via_admin) == written(via_api)
    assert written(via_admin)[0] == (
        TransactionType.ADJUSTMENT,
        Decimal("12.50"),
        Decimal("12.50"),
        "Goodwill",
        f"admin:{superuser.pk}",
    )
    assert [action for action, _, _ in written(via_admin)[1]] == ["balance.change", "admin.user_update"]


def test_admin_zero_adjustment_shows_the_service_error(client, superuser):
    target = UserFactory()
    client.force_login(superuser)
    response = client.post(adjust_url(target), {"amount": "0", "reason": "x"})
    assert response.status_code == 200
    assert "The amount cannot be zero." in response.context["form"].errors["amount"]
    assert not Transaction.objects.exists() and not AuditLog.objects.exists()


@pytest.mark.parametrize("field", ["balance", "referral_bonus_earned", "is_active", "password"])
def test_staff_service_never_writes_a_ruled_column_as_a_plain_field(superuser, field):
    from staff.services import user_admin_update
    from zenzefi.errors import InvalidInput

    target = UserFactory(full_name="Kept")
    before = (target.balance, target.referral_bonus_earned, target.is_active, target.password)
    with pytest.raises(InvalidInput) as refused:
        user_admin_update(user_id=target.pk, actor=superuser, fields={"full_name": "New", field: "1"})
    assert refused.value.code == "unknown_field"
    target.refresh_from_db()
    assert (target.balance, target.referral_bonus_earned, target.is_active, target.password) == before
    assert target.full_name == "Kept" and not AuditLog.objects.exists()


def test_the_self_deactivation_refusal_is_in_the_staff_members_language(client):
    from tests.factories import staff_with

    staff = staff_with("accounts.view_user", "accounts.change_user", language="ru")
    client.force_login(staff)
    data = change_form_data(client, staff)
    data.pop("is_active", None)
    response = client.post(f"/admin/accounts/user/{staff.pk}/change/", data)
    assert "Нельзя деактивировать собственную учётную запись." in response.content.decode()
    staff.refresh_from_db()
    assert staff.is_active is True
