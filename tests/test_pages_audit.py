"""Account changes made on the pages are audited through the accounts services (issue 13):
password change, password reset (request and new password), profile and language changes."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditLog
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW = "Another-Strong-Pass-2026"


@pytest.fixture
def user(db):
    return UserFactory(language="en", email="maria@example.com", full_name="Maria")


@pytest.fixture
def client(user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def entries(action: str):
    return list(AuditLog.objects.filter(action=action))


def test_password_change_is_audited_without_the_password(client, user):
    data = {"old_password": DEFAULT_PASSWORD, "new_password1": NEW, "new_password2": NEW}
    response = client.post("/account/password/", data)
    assert response.status_code == 302 and response["Location"] == "/account/profile/"
    user.refresh_from_db()
    assert user.check_password(NEW)
    [entry] = entries("user.password_change")
    assert entry.actor == user and entry.resource_id == str(user.pk) and entry.details["source"] == "change"
    assert NEW not in str(entry.details) and user.password not in str(entry.details)
    assert client.get("/account/").status_code == 200  # this session stays signed in


def test_a_refused_password_change_writes_nothing(client, user):
    data = {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW}
    assert client.post("/account/password/", data).status_code == 200
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD) and not entries("user.password_change")


def test_profile_change_is_audited_with_old_and_new_values(client, user):
    response = client.post("/account/profile/", {"full_name": "Maria K.", "language": "ru"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.full_name == "Maria K." and user.language == "ru"
    [entry] = entries("user.profile_update")
    assert entry.actor == user
    assert entry.details["changes"] == {
        "full_name": {"from": "Maria", "to": "Maria K."},
        "language": {"from": "en", "to": "ru"},
    }


def test_language_switch_is_audited(client, user):
    client.post("/i18n/setlang/", {"language": "ru", "next": "/account/"})
    user.refresh_from_db()
    assert user.language == "ru"
    [entry] = entries("user.profile_update")
    assert entry.details["changes"] == {"language": {"from": "en", "to": "ru"}}
    client.post("/i18n/setlang/", {"language": "ru", "next": "/account/"})  # no change, no entry
    assert len(entries("user.profile_update")) == 1


def test_reset_requests_are_audited_the_same_whether_or_not_the_address_exists(user, mailoutbox):
    anonymous = Client(HTTP_ACCEPT_LANGUAGE="en")
    known = anonymous.post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR="10.9.0.1")
    unknown = anonymous.post(
        "/accounts/password-reset/", {"email": "nobody@example.com"}, REMOTE_ADDR="10.9.0.2"
    )
    assert known["Location"] == unknown["Location"] == "/accounts/password-reset/done/"
    assert len(mailoutbox) == 1
    first, second = sorted(entries("auth.password_reset_request"), key=lambda e: e.pk)
    assert first.actor is None and second.actor is None
    assert first.details["email"] == "ma***@example.com"
    assert second.details["email"] == "no***@example.com"
    assert set(first.details) == set(second.details)
    assert first.resource_id == str(user.pk) and second.resource_id == ""
    assert "maria@example.com" not in str(first.details)

    # The emailed link: the new password is set by the service and audited too.
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    form_page = anonymous.get(link, follow=True)
    done = anonymous.post(form_page.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done["Location"] == "/accounts/reset/done/"
    user.refresh_from_db()
    assert user.check_password(NEW)
    [entry] = entries("user.password_change")
    assert entry.actor == user and entry.details["source"] == "reset" and NEW not in str(entry.details)
