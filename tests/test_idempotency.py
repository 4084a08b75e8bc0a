import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from currency.models import Transaction
from idempotency.models import IdempotencyRecord
from tests.factories import UserFactory
from tests.test_currency_api import MOCK, assert_error

pytestmark = pytest.mark.django_db


def post(client, body, key):
    return client.post(MOCK, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_same_body_replays_and_charges_once(auth_client, user):
    first = post(auth_client, {"amount": "25.00"}, "key-1")
    assert first.status_code == 200
    second = post(auth_client, {"amount": "25.00"}, "key-1")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    user.refresh_from_db()
    assert user.balance == Decimal("25.00")
    assert Transaction.objects.filter(user=user).count() == 1


def test_same_key_different_body_is_422_and_changes_nothing(auth_client, user):
    assert post(auth_client, {"amount": "25.00"}, "key-2").status_code == 200
    assert_error(post(auth_client, {"amount": "30.00"}, "key-2"), 422, "idempotency_key_reused")
    user.refresh_from_db()
    assert user.balance == Decimal("25.00")
    assert Transaction.objects.filter(user=user).count() == 1


def test_keys_are_per_user(auth_client, user):
    other = UserFactory()
    other_client = APIClient()
    other_client.force_authenticate(other)
    assert post(auth_client, {"amount": "5"}, "shared").status_code == 200
    assert post(other_client, {"amount": "5"}, "shared").status_code == 200
    assert Transaction.objects.count() == 2


def test_without_key_every_request_charges(auth_client, user):
    for _ in range(2):
        assert auth_client.post(MOCK, {"amount": "5"}, format="json").status_code == 200
    assert Transaction.objects.filter(user=user).count() == 2


@pytest.mark.parametrize("key", ["", "   ", "x" * 256])
def test_bad_keys_are_400(auth_client, key):
    assert_error(post(auth_client, {"amount": "5"}, key), 400, "invalid_idempotency_key")
    assert Transaction.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_failed_request_is_not_remembered(auth_client, user):
    assert_error(post(auth_client, {"amount": "0"}, "retry-me"), 400)
    assert IdempotencyRecord.objects.count() == 0
    assert post(auth_client, {"amount": "5"}, "retry-me").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_same_key_charges_once(requires_postgres):
    user = UserFactory()
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def call():
        client = APIClient()
        client.force_authenticate(user)
        try:
            barrier.wait()
            statuses.append(post(client, {"amount": "10"}, "race").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    user.refresh_from_db()
    assert user.balance == Decimal("10.00")
    assert Transaction.objects.filter(user=user).count() == 1
