from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from currency.models import Transaction
from idempotency.models import IdempotencyRecord
from tests.concurrency import run_threads
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

    def call():
        client = APIClient()
        client.force_authenticate(user)
        return post(client, {"amount": "10"}, "race").status_code

    statuses = run_threads(8, call)
    assert statuses == [200] * 8
    user.refresh_from_db()
    assert user.balance == Decimal("10.00")
    assert Transaction.objects.filter(user=user).count() == 1


# --- the plain core (issue 15): no DRF, a handler returning (status, body) ---------------------


def test_the_core_runs_a_plain_handler_once_and_replays_it(user):
    from idempotency.services import idempotent_atomic

    calls = []

    def handler():
        calls.append(1)
        return 201, {"id": len(calls)}

    args = {"user": user, "scope": "plain", "key": "k", "fingerprint": "f"}
    first = idempotent_atomic(handler=handler, **args)
    second = idempotent_atomic(handler=handler, **args)
    assert (first.status, first.body, first.replayed) == (201, {"id": 1}, False)
    assert (second.status, second.body, second.replayed) == (201, {"id": 1}, True)
    assert second.done_at == first.done_at and calls == [1]
    with pytest.raises(Exception) as refused:
        idempotent_atomic(handler=handler, **{**args, "fingerprint": "other"})
    assert refused.value.code == "idempotency_key_reused" and calls == [1]


@pytest.mark.django_db(transaction=True)
def test_claimed_core_runs_the_handler_with_no_transaction_and_a_committed_claim():
    """The record is claimed "in progress" and committed before the handler runs (no row lock,
    no open transaction during it); a same-key call meanwhile is 409 in progress."""
    from django.db import transaction

    from idempotency.services import idempotent_claimed
    from zenzefi.errors import Conflict

    user = UserFactory()
    args = {"user": user, "scope": "remote", "key": "k", "fingerprint": "f"}
    seen = {}

    def handler(claim):
        seen["in_atomic_block"] = transaction.get_connection().in_atomic_block
        seen["committed"] = IdempotencyRecord.objects.filter(
            pk=claim.record_id, response_status=None
        ).exists()
        with pytest.raises(Conflict) as busy:
            idempotent_claimed(handler=lambda c: (201, {}), **args)
        seen["busy"] = busy.value.code
        return 201, {"ok": True}

    outcome = idempotent_claimed(handler=handler, **args)
    assert outcome.body == {"ok": True} and not outcome.replayed
    assert seen == {"in_atomic_block": False, "committed": True, "busy": "idempotency_in_progress"}
    record = IdempotencyRecord.objects.get()
    assert (record.response_status, record.response_body, record.claimed_until) == (201, {"ok": True}, None)
    assert idempotent_claimed(handler=handler, **args).replayed


def test_claimed_failures_forget_the_key_unless_progress_was_noted(user):
    from idempotency.services import idempotent_claimed

    args = {"user": user, "scope": "remote", "fingerprint": "f"}

    def fails(claim):
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        idempotent_claimed(handler=fails, key="plain", **args)
    assert not IdempotencyRecord.objects.filter(key="plain").exists()  # a retry starts afresh

    def notes_then_fails(claim):
        claim.note({"payment": 7})
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        idempotent_claimed(handler=notes_then_fails, key="noted", **args)
    record = IdempotencyRecord.objects.get(key="noted")
    assert record.response_status is None and record.claimed_until is None
    seen = []
    outcome = idempotent_claimed(
        handler=lambda claim: (seen.append(claim.reference), (201, {}))[1], key="noted", **args
    )
    assert seen == [{"payment": 7}] and outcome.status == 201  # the retry resumed from the note


def test_page_nonces_use_the_same_core_records(user):
    from idempotency.services import PAGE_SCOPE_PREFIX, page_action_once, page_nonce_issue

    nonce = page_nonce_issue(user=user, action="x")
    first = page_action_once(user=user, action="x", nonce=nonce, perform=lambda: ("made", {"id": 1}))
    again = page_action_once(user=user, action="x", nonce=nonce, perform=lambda: ("twice", {"id": 2}))
    assert (first.result, first.replayed, again.result, again.replayed) == ("made", False, None, True)
    assert again.reference == {"id": 1}
    record = IdempotencyRecord.objects.get()
    assert record.scope == PAGE_SCOPE_PREFIX + "x" and record.response_body == {"id": 1}


def test_expired_records_are_purged_by_the_daily_expired_records_job(user, settings):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.tasks import flush_expired_jwts
    from idempotency.services import idempotency_purge

    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    assert post_ok(user, "old") and post_ok(user, "fresh")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert flush_expired_jwts() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert idempotency_purge() == 0  # idempotent


def post_ok(user, key) -> bool:
    client = APIClient()
    client.force_authenticate(user)
    return post(client, {"amount": "1"}, key).status_code == 200
