"""SPEC §9 / issue 11 item 6: Redis (or the cache) unreachable → 503 service_unavailable.

Every test points `REDIS_URL` (the kv) and the Django cache at a closed port on this machine: a
real connection refusal, not a mock. The API, the pages and /health answer 503 with Retry-After
and the usual error shape, nothing is written, no traceback reaches the client, and the operators
get one log line however many requests fail.
"""

import logging
import socket
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from currency.models import Transaction
from tests.factories import DEFAULT_PASSWORD, UserFactory, fund
from tokens.models import AccessToken
from zenzefi import outage
from zenzefi.kv import get_kv


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is


@pytest.fixture
def redis_down(_clean_cache):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "zzdown",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    outage.reset_log_throttle()
    with override_settings(REDIS_URL=url, CACHES=caches):
        get_kv.cache_clear()
        yield url
    get_kv.cache_clear()
    outage.reset_log_throttle()


def _assert_503_json(response):
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["detail"]
    assert int(response["Retry-After"]) > 0
    assert b"Traceback" not in response.content


@pytest.mark.django_db
def test_api_login_balance_and_anonymous_list_answer_503(redis_down):
    user = UserFactory()
    client = APIClient(raise_request_exception=False)

    credentials = {"username": user.username, "password": DEFAULT_PASSWORD}
    _assert_503_json(client.post("/api/v1/auth/login", credentials))
    _assert_503_json(client.get("/api/v1/bundles/"))

    access = str(RefreshToken.for_user(user).access_token)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    _assert_503_json(client.get("/api/v1/currency/balance"))


@pytest.mark.django_db
def test_purchase_during_outage_changes_nothing(redis_down):
    user = UserFactory()
    fund(user, "50.00")
    ledger_rows = Transaction.objects.count()
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")

    response = client.post("/api/v1/tokens/purchase", {"duration_hours": 1, "scope": "full"}, format="json")

    _assert_503_json(response)
    user.refresh_from_db()
    assert user.balance == Decimal("50.00")
    assert Transaction.objects.count() == ledger_rows
    assert not AccessToken.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_page_login_answers_503_page_without_traceback(redis_down):
    user = UserFactory()
    client = Client(raise_request_exception=False)

    response = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) > 0
    assert b"Traceback" not in response.content
    assert b"<h1>" in response.content


@pytest.mark.django_db
def test_health_is_unhealthy_503(redis_down):
    response = Client(raise_request_exception=False).get("/health/detailed")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["components"]["cache"]["status"] == "unhealthy"


@pytest.mark.django_db
def test_one_log_line_no_traceback_for_many_failures(redis_down, caplog):
    user = UserFactory()
    client = APIClient(raise_request_exception=False)
    page_client = Client(raise_request_exception=False)
    caplog.set_level(logging.INFO)

    wrong = {"username": user.username, "password": "x"}
    for _ in range(5):
        assert client.get("/api/v1/bundles/").status_code == 503
        assert client.post("/api/v1/auth/login", wrong).status_code == 503
        assert page_client.post("/accounts/login/", wrong).status_code == 503

    outage_lines = [r for r in caplog.records if r.name == "zenzefi.outage"]
    assert len(outage_lines) == 1
    assert "service_unavailable" in outage_lines[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the logs"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name != "zenzefi.outage"]


def test_outage_detection_follows_the_cause_chain():
    import redis.exceptions

    try:
        try:
            raise redis.exceptions.ConnectionError("refused")
        except redis.exceptions.ConnectionError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert outage.is_outage(exc)
    assert not outage.is_outage(ValueError("other"))
    assert not outage.is_outage(None)
