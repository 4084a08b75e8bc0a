"""An account's language: the sign-up page's language, or Accept-Language at API registration
(ru or en; otherwise LANGUAGE_CODE); staff choose theirs and the admin follows it."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "Zenzefi-2026-strong"


def _api_register(username: str, **headers):
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    return APIClient().post("/api/v1/auth/register", body, format="json", **headers)


@pytest.mark.parametrize(
    "n,header,expected",
    [
        (1, "en-GB,en;q=0.9", "en"),
        (2, "ru", "ru"),
        (3, "de-DE,en;q=0.5", "en"),
        (4, "de", "ru"),  # none of ours: LANGUAGE_CODE
        (5, None, "ru"),
    ],
)
def test_api_registration_takes_accept_language(n, header, expected):
    headers = {"HTTP_ACCEPT_LANGUAGE": header} if header else {}
    response = _api_register(f"api{n}", **headers)
    assert response.status_code == 201, response.content
    assert User.objects.get(pk=response.json()["id"]).language == expected


def test_api_registration_explicit_language_wins():
    response = APIClient().post(
        "/api/v1/auth/register",
        {"email": "x@example.com", "username": "xen", "password": PASSWORD, "language": "ru"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 201
    assert User.objects.get(username="xen").language == "ru"


@pytest.mark.parametrize("header,expected", [("en", "en"), ("ru", "ru")])
def test_signup_page_language_becomes_the_accounts(header, expected):
    client = Client(HTTP_ACCEPT_LANGUAGE=header)
    response = client.post(
        "/accounts/signup/",
        {
            "email": f"p{header}@example.com",
            "username": f"page_{header}",
            "full_name": "",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert User.objects.get(username=f"page_{header}").language == expected


@pytest.mark.parametrize(
    "language,heading", [("en", "Select user to change"), ("ru", "Выберите пользователь для изменения")]
)
def test_admin_follows_the_staff_members_language(language, heading):
    staff = User.objects.create_superuser(
        username=f"s{language}", email=f"s{language}@example.com", password=PASSWORD
    )
    staff.language = language
    staff.save(update_fields=["language"])
    client = Client(HTTP_ACCEPT_LANGUAGE="ru" if language == "en" else "en")  # the browser is overruled
    client.force_login(staff)
    page = client.get("/admin/accounts/user/").content.decode()
    assert heading in page
