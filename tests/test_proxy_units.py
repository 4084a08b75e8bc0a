"""Proxy parts without a server: the session-start locks and the breaker's states on the proxy's
clock (the end-to-end behaviour is in tests/test_proxy*.py)."""

from __future__ import annotations

import asyncio

import pytest

from proxy.admission import _StartLocks
from proxy.breaker import CircuitBreaker
from proxy.responses import ProxyError
from tests.upstream import FakeClock


def test_start_locks_serialise_one_token_and_are_dropped_by_the_last_user():
    locks = _StartLocks()
    inside = {"now": 0, "most": 0}
    seen_during: list[int] = []

    async def start():
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
        seen_during.append(len(locks))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        inside["now"] -= 1
        return "record"

    async def run():
        results = await asyncio.gather(
            *(locks.run("digest-a", start) for _ in range(5)), locks.run("digest-b", start)
        )
        return results

    assert asyncio.run(run()) == ["record"] * 6
    assert inside["most"] == 2  # one per token: digest-a's five one after another, beside digest-b
    assert max(seen_during) == 2 and len(locks) == 0  # no lock left behind


def test_start_locks_drop_the_lock_when_a_start_fails():
    locks = _StartLocks()

    async def fail():
        raise ProxyError(409, "device_conflict", "in use")

    async def run():
        for _ in range(3):
            with pytest.raises(ProxyError):
                await locks.run("digest", fail)

    asyncio.run(run())
    assert len(locks) == 0


@pytest.fixture
def clock(monkeypatch, settings):
    from proxy.clock import clock

    fake = FakeClock()
    monkeypatch.setattr(clock, "time", fake.time)
    monkeypatch.setattr(clock, "monotonic", fake.monotonic)
    settings.PROXY_CIRCUIT_FAILURES = 3
    settings.PROXY_CIRCUIT_COOLDOWN = 10
    return fake


def refused(breaker: CircuitBreaker) -> int | None:
    """The Retry-After of a refusal, None when the request may go upstream."""
    breaker.health_read_at = float("inf")  # no health verdict in these tests

    async def admit():
        await breaker.admit()

    try:
        asyncio.run(admit())
    except ProxyError as exc:
        assert exc.status == 503 and exc.code == "upstream_circuit_open"
        return int(dict(exc.headers)[b"retry-after"])
    return None


def test_breaker_opens_after_consecutive_failures_only(clock):
    breaker = CircuitBreaker()
    breaker.failure()
    breaker.failure()
    breaker.success()  # an answer in between: the count starts again
    breaker.failure()
    breaker.failure()
    assert refused(breaker) is None
    breaker.failure()
    assert refused(breaker) == 10


def test_breaker_lets_one_probe_through_after_the_cooldown(clock):
    breaker = CircuitBreaker()
    for _ in range(3):
        breaker.failure()
    clock.advance(9)
    assert refused(breaker) == 1
    clock.advance(1)
    assert refused(breaker) is None  # the probe
    assert refused(breaker) == 1  # while the probe is under way, the others wait
    breaker.failure()  # the probe failed: open again for a whole cool-down
    assert refused(breaker) == 10
    clock.advance(10)
    assert refused(breaker) is None
    breaker.success()  # the probe succeeded: closed
    assert refused(breaker) is None and breaker.failures == 0
