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
