"""The API throttle's store round trip (accounts/throttling.py): the ban check and the window count are
one pipelined Redis call per request, and a request refused by a ban is not counted in the window, so
when a ban ends mid-window the caller gets the window's full allowance (as before the pipelining)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from tests.factories import UserFactory
from zenzefi.kv import get_kv

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/currency/balance"
T0 = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)  # early in a minute: all requests in one window


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.API_RATE_LIMIT_FREE = 3


def test_requests_refused_by_a_ban_do_not_use_up_the_window():
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    kv = get_kv()
    window = int(T0.timestamp() // 60)
    with time_machine.travel(T0, tick=False) as clock:
        kv.set(f"rl:ban:u{user.pk}", {"until": T0.timestamp() + 20, "tier": "free"}, 20)
        assert [client.get(BALANCE).status_code for _ in range(5)] == [429] * 5
        assert (kv.get(f"rl:api:u{user.pk}:{window}") or 0) == 0  # nothing counted while banned
        clock.shift(timedelta(seconds=21))  # the ban is over, same window
        kv.delete(f"rl:ban:u{user.pk}")  # (the store's TTL does this in real time)
        assert [client.get(BALANCE).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert kv.get(f"rl:api:u{user.pk}:{window}") == 4


def test_the_window_count_is_kept_in_the_shared_store():
    user = UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    window = int(T0.timestamp() // 60)
    with time_machine.travel(T0, tick=False):
        assert [client.get(BALANCE).status_code for _ in range(2)] == [200, 200]
        assert get_kv().get(f"rl:api:u{user.pk}:{window}") == 2
