from datetime import timedelta

import jwt
import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from accounts.models import REFERRAL_CODE_LENGTH, User
from audit.models import AuditLog
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.test_currency_api import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"
GOOD = {
    "email": "Ivan@Example.com",
    "username": "ivan",
    "password": "Zenzefi-2026-strong",
    "full_name": "Ivan P.",
}


def register(client, ip="10.0.0.1", **overrides):
    return client.post(REGISTER, {**GOOD, **overrides}, format="json", REMOTE_ADDR=ip)


def login(client, ip="10.0.0.1", **body):
    return client.post(LOGIN, body, format="json", REMOTE_ADDR=ip)


def test_register_creates_user_with_referral_code_and_argon2(api_client):
    response = register(api_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "ivan" and body["email"] == "ivan@example.com"
    assert body["balance"] == "0.00" and body["tier"] == "free"
    assert len(body["referral_code"]) == REFERRAL_CODE_LENGTH
    assert "password" not in body
    user = User.objects.get(username="ivan")
    assert user.password.startswith("argon2$")
    assert user.check_password(GOOD["password"])
    entry = AuditLog.objects.get(action="user.register")
    assert entry.actor == user and entry.ip == "10.0.0.1"
    assert GOOD["password"] not in str(entry.details)


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"email": "IVAN@example.com", "username": "other"}, "email"),
        ({"username": "IVAN", "email": "x@example.com"}, "username"),
    ],
)
def test_register_duplicates_are_400(api_client, overrides, field):
    assert register(api_client).status_code == 201
    body = assert_error(register(api_client, **overrides), 400, "invalid")
    assert field in body["errors"]
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"password": "short"}, "password"),
        ({"password": "12345678901"}, "password"),
        ({"password": "password123"}, "password"),
        ({"password": "ivan@example.com1"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"username": "bad name!"}, "username"),
        ({"username": ""}, "username"),
    ],
)
def test_register_bad_input_is_400_and_writes_nothing(api_client, overrides, field):
    body = assert_error(register(api_client, **overrides), 400, "invalid")
    assert field in body["errors"]
    assert User.objects.count() == 0
    assert not AuditLog.objects.filter(action="user.register").exists()


def test_register_with_referral_code_in_body_or_query(api_client):
    referrer = UserFactory()
    response = register(api_client, referral_code=referrer.referral_code.lower())
    assert response.status_code == 201
    assert response.json()["referred_by"] == referrer.username
    response = api_client.post(
        f"{REGISTER}?referral_code={referrer.referral_code}",
        {**GOOD, "username": "second", "email": "second@example.com"},
        format="json",
    )
    assert response.status_code == 201
    assert User.objects.get(username="second").referred_by == referrer


def test_register_with_unknown_referral_code_is_400(api_client):
    assert_error(register(api_client, referral_code="NOSUCHCODE99"), 400, "invalid_referral_code")
    assert not User.objects.filter(username="ivan").exists()


def test_referral_code_collision_draws_another(monkeypatch):
    taken = UserFactory().referral_code
    codes = iter([taken, taken, "ABCDEFGHJKMN"])
    monkeypatch.setattr("accounts.models.generate_referral_code", lambda: next(codes))
    user = UserFactory()
    assert user.referral_code == "ABCDEFGHJKMN"


def test_login_by_username_and_by_email_then_me(api_client):
    user = UserFactory(username="petr", email="petr@example.com")
    for body in ({"username": "PETR"}, {"email": "Petr@Example.com"}, {"username": "petr@example.com"}):
        response = login(api_client, **body, password=DEFAULT_PASSWORD)
        assert response.status_code == 200, response.content
        tokens = response.json()
        assert set(tokens) >= {"access", "refresh"}
        me = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        assert me.status_code == 200 and me.json()["username"] == "petr"
    assert AuditLog.objects.filter(action="auth.login", actor=user).count() == 3


def test_login_failure_is_401_and_audited(api_client):
    user = UserFactory()
    assert_error(login(api_client, username=user.username, password="wrong-one"), 401, "invalid_credentials")
    assert_error(login(api_client, username="ghost", password="whatever"), 401, "invalid_credentials")
    assert AuditLog.objects.filter(action="auth.login_failed").count() == 2
    assert AuditLog.objects.get(action="auth.login_failed", actor=user).ip == "10.0.0.1"


def test_login_inactive_user_is_401(api_client):
    user = UserFactory(is_active=False)
    assert_error(
        login(api_client, username=user.username, password=DEFAULT_PASSWORD), 401, "invalid_credentials"
    )


@pytest.mark.parametrize(
    "body", [{}, {"password": "x"}, {"username": "a"}, {"username": "", "password": "x"}]
)
def test_login_bad_input_is_400(api_client, body):
    assert_error(login(api_client, **body), 400, "invalid")


def test_refresh_gives_new_access(api_client):
    user = UserFactory()
    tokens = login(api_client, username=user.username, password=DEFAULT_PASSWORD).json()
    response = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 200
    access = response.json()["access"]
    assert api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200
    assert_error(api_client.post(REFRESH, {"refresh": "garbage"}, format="json"), 401, "token_not_valid")
    assert_error(api_client.post(REFRESH, {"refresh": tokens["access"]}, format="json"), 401)
    assert_error(api_client.post(REFRESH, {}, format="json"), 400, "invalid")


def test_expired_and_forged_jwt_are_401(api_client):
    user = UserFactory()
    tokens = login(api_client, username=user.username, password=DEFAULT_PASSWORD).json()
    later = timezone.now() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] + timedelta(minutes=1)
    with time_machine.travel(later):
        assert_error(
            api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {tokens['access']}"), 401, "token_not_valid"
        )
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "user_id": str(user.pk)},
        "not-our-key-but-long-enough-for-hs256-0123456789",
        algorithm="HS256",
    )
    assert_error(api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {forged}"), 401, "token_not_valid")
    assert_error(api_client.get(ME, HTTP_AUTHORIZATION="Bearer "), 401)


def test_sixth_failed_login_from_one_ip_is_429_others_unaffected(api_client):
    user = UserFactory()
    for _ in range(5):
        assert login(api_client, "10.9.9.9", username=user.username, password="nope").status_code == 401
    response = login(api_client, "10.9.9.9", username=user.username, password=DEFAULT_PASSWORD)
    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0
    hit = AuditLog.objects.get(action="rate_limit.hit")
    assert hit.suspicious and hit.ip == "10.9.9.9"
    # Another address is not affected, and X-Forwarded-For is not trusted to dodge the limit.
    assert (
        login(api_client, "10.9.9.10", username=user.username, password=DEFAULT_PASSWORD).status_code == 200
    )
    spoofed = api_client.post(
        LOGIN,
        {"username": user.username, "password": DEFAULT_PASSWORD},
        format="json",
        REMOTE_ADDR="10.9.9.9",
        HTTP_X_FORWARDED_FOR="1.2.3.4",
    )
    assert spoofed.status_code == 429


def test_successful_logins_do_not_lock_out(api_client):
    user = UserFactory()
    for _ in range(8):
        assert (
            login(api_client, "10.7.7.7", username=user.username, password=DEFAULT_PASSWORD).status_code
            == 200
        )


def test_register_is_limited_per_ip(api_client):
    for i in range(5):
        assert (
            register(
                api_client, "10.5.5.5", username=f"newbie{i}", email=f"newbie{i}@example.com"
            ).status_code
            == 201
        )
    response = register(api_client, "10.5.5.5", username="newbie6", email="newbie6@example.com")
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response
    assert not User.objects.filter(username="newbie6").exists()
    assert (
        register(api_client, "10.5.5.6", username="newbie7", email="newbie7@example.com").status_code == 201
    )
