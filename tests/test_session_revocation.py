"""Sessions never outlive a password (issue 11 item 5): after a password change, a password
reset or a deactivation, every refresh JWT of the user is blacklisted, their access JWTs stop
working, and their other page sessions end."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from audit.models import AuditLog
from tests.factories import DEFAULT_PASSWORD, UserFactory, staff_with

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"
NEW = "Brand-New-Pass-2026!"


def api_login(user, password: str = DEFAULT_PASSWORD) -> dict:
    response = APIClient().post(LOGIN, {"username": user.username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def me_status(access: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get(ME).status_code


def refresh(token: str):
    return APIClient().post(REFRESH, {"refresh": token}, format="json")


def page_session(user) -> Client:
    client = Client()
    client.force_login(user)
    assert client.get("/account/").status_code == 200
    return client


def assert_api_sessions_dead(pairs: list[dict]) -> None:
    for pair in pairs:
        answer = refresh(pair["refresh"])
        assert answer.status_code == 401, answer.content
        assert me_status(pair["access"]) == 401


def test_refresh_rotates_and_each_refresh_token_works_once(user):
    pair = api_login(user)
    first = refresh(pair["refresh"])
    assert first.status_code == 200
    body = first.json()
    assert set(body) >= {"access", "refresh"} and body["refresh"] != pair["refresh"]
    assert refresh(pair["refresh"]).status_code == 401  # the used one is blacklisted
    assert refresh(body["refresh"]).status_code == 200
    assert me_status(body["access"]) == 200


def test_password_change_page_ends_every_other_session_and_keeps_this_one(user):
    pairs = [api_login(user), api_login(user)]
    assert all(me_status(pair["access"]) == 200 for pair in pairs)
    this, other = page_session(user), page_session(user)
    response = this.post(
        "/account/password/", {"old_password": DEFAULT_PASSWORD, "new_password1": NEW, "new_password2": NEW}
    )
    assert response.status_code == 302
    assert_api_sessions_dead(pairs)
    assert this.get("/account/").status_code == 200  # the session that changed it is kept
    assert other.get("/account/").status_code == 302  # another one is logged out
    assert BlacklistedToken.objects.filter(token__user=user).count() == 2
    entry = AuditLog.objects.get(action="auth.sessions_revoked")
    assert (entry.details["reason"], entry.details["refresh_tokens"]) == ("password_change", 2)
    assert AuditLog.objects.filter(action="user.password_change", details__source="change").count() == 1
    fresh = api_login(user, NEW)  # a new login works
    assert me_status(fresh["access"]) == 200 and refresh(fresh["refresh"]).status_code == 200


def test_failed_password_change_revokes_nothing(user):
    pair = api_login(user)
    this = page_session(user)
    response = this.post(
        "/account/password/", {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW}
    )
    assert response.status_code == 200
    assert not BlacklistedToken.objects.exists()
    assert me_status(pair["access"]) == 200 and refresh(pair["refresh"]).status_code == 200


def test_password_reset_ends_every_session(user, mailoutbox):
    pair = api_login(user)
    other = page_session(user)
    client = Client()
    client.post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR="10.9.0.1")
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done["Location"] == "/accounts/reset/done/"
    assert_api_sessions_dead([pair])
    assert other.get("/account/").status_code == 302
    assert AuditLog.objects.get(action="auth.sessions_revoked").details["reason"] == "password_reset"


def test_admin_password_change_ends_every_session(client, user):
    pair = api_login(user)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(f"/admin/accounts/user/{user.pk}/password/", {"password1": NEW, "password2": NEW})
    assert response.status_code == 302, response.content[:2000]
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert_api_sessions_dead([pair])
    assert AuditLog.objects.get(action="auth.sessions_revoked").details["reason"] == "password_admin"


def test_deactivation_by_staff_api_ends_every_session(user):
    pair = api_login(user)
    other = page_session(user)
    staff = APIClient()
    staff.force_authenticate(staff_with("accounts.change_user"))
    assert (
        staff.patch(f"/api/v1/admin/users/{user.pk}", {"is_active": False}, format="json").status_code == 200
    )
    assert_api_sessions_dead([pair])
    assert other.get("/account/").status_code == 302
    assert OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True).count() == 0
    assert AuditLog.objects.get(action="auth.sessions_revoked").details["reason"] == "deactivated"
    # Reactivated, the old refresh JWT stays dead (blacklisted); a new login works.
    assert (
        staff.patch(f"/api/v1/admin/users/{user.pk}", {"is_active": True}, format="json").status_code == 200
    )
    assert refresh(pair["refresh"]).status_code == 401
    assert me_status(api_login(user)["access"]) == 200


def test_deactivation_in_the_admin_ends_every_session(client, user):
    pair = api_login(user)
    other = page_session(user)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(f"/admin/accounts/user/{user.pk}/change/")
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        {
            "username": user.username,
            "email": user.email,
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        }
    )
    data.pop("is_active", None)
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data.pop("groups", None)
    data.pop("user_permissions", None)
    for name in (
        "notify_token_expiring",
        "notify_low_balance",
        "notify_renewal",
        "notify_payment",
        "is_staff",
    ):
        if not data.get(name):
            data.pop(name, None)
    response = client.post(f"/admin/accounts/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert not User.objects.get(pk=user.pk).is_active
    assert_api_sessions_dead([pair])
    assert other.get("/account/").status_code == 302


def test_refresh_of_an_inactive_or_unknown_user_is_401_not_500(user):
    pair = api_login(user)
    User.objects.filter(pk=user.pk).update(is_active=False)  # not through the service: no blacklist
    assert refresh(pair["refresh"]).status_code == 401
    other = UserFactory()
    pair = api_login(other)
    OutstandingToken.objects.filter(user=other).delete()
    AuditLog.objects.filter(actor=other).delete()
    User.objects.filter(pk=other.pk).delete()
    assert refresh(pair["refresh"]).status_code == 401


def test_password_changed_outside_the_services_still_kills_refresh_and_access(user):
    """The revoke claim: a refresh or access JWT issued for an older password is refused even
    if it was never blacklisted (e.g. one issued before the blacklist app was installed)."""
    pair = api_login(user)
    user.set_password(NEW)
    user.save()
    assert refresh(pair["refresh"]).status_code == 401
    assert me_status(pair["access"]) == 401


def test_expired_jwt_records_are_flushed(user):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.tasks import flush_expired_jwts

    api_login(user)
    live = api_login(user)
    old = OutstandingToken.objects.order_by("pk").first()
    BlacklistedToken.objects.create(token=old)
    OutstandingToken.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert flush_expired_jwts() == 1
    assert not OutstandingToken.objects.filter(pk=old.pk).exists() and not BlacklistedToken.objects.exists()
    assert refresh(live["refresh"]).status_code == 200
