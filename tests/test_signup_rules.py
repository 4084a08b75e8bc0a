"""Issue 15: one sign-up validation (accounts.validators) for `POST auth/register` and the
sign-up page. The same input is refused by both, on the same field, with the same message,
and creates nothing; what one accepts the other accepts, normalized the same way."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Zenzefi-2026-strong"
GOOD = {"email": "Olga@Example.com", "username": "olga", "full_name": "Olga K.", "password": PASSWORD}


def via_api(data: dict, ip: str) -> tuple[int, dict]:
    response = APIClient().post(
        "/api/v1/auth/register", data, format="json", REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE="en"
    )
    return response.status_code, response.json().get("errors", {})


def via_page(data: dict, ip: str) -> tuple[int, dict]:
    form_data = {**data, "password1": data["password"], "password2": data["password"], "referral_code": ""}
    del form_data["password"]
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post("/accounts/signup/", form_data, REMOTE_ADDR=ip)
    if response.status_code != 200:
        return response.status_code, {}
    errors = dict(response.context["form"].errors)
    if "password1" in errors:
        errors["password"] = errors.pop("password1")
    return response.status_code, {field: list(messages) for field, messages in errors.items()}


LENGTH_LIMITS = ({"username": "ab"}, {"full_name": "x" * 256})


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"email": "TAKEN@example.com"}, "email"),  # taken, in another case
        ({"username": "Taken"}, "username"),
        ({"password": "short1"}, "password"),
        ({"password": "12345678901"}, "password"),
        ({"password": "password123"}, "password"),
        ({"password": "olga@example.com1"}, "password"),  # too close to the email
        ({"username": "bad name!"}, "username"),
        ({"username": "ab"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"full_name": "x" * 256}, "full_name"),
    ],
)
def test_api_and_page_refuse_the_same_input_on_the_same_field_with_the_same_message(overrides, field):
    UserFactory(email="taken@example.com", username="taken")
    data = {**GOOD, **overrides}
    api_status, api_errors = via_api(data, "10.30.0.1")
    page_status, page_errors = via_page(data, "10.30.0.2")
    assert (api_status, page_status) == (400, 200)
    assert set(api_errors) == set(page_errors) == {field}
    if overrides not in LENGTH_LIMITS:  # DRF and Django forms word a length limit each their way
        assert api_errors == page_errors
    assert User.objects.count() == 1


def test_api_and_page_accept_and_normalize_alike():
    assert via_api(GOOD, "10.30.0.3")[0] == 201
    assert via_page({**GOOD, "email": "Petr@Example.COM", "username": "petr"}, "10.30.0.4")[0] == 302
    assert set(User.objects.values_list("email", flat=True)) == {"olga@example.com", "petr@example.com"}
