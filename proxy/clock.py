"""The proxy's clock: one seam for the time the proxy reads.

The breaker's cool-down and probes, the health-verdict polling, idle sessions and takeovers, the
rate-limit window, "last seen" and the database-connection recycling all read `clock`, so a test
moves time forward (tests/upstream.py `fake_clock`) instead of sleeping until a cool-down passes.
Timeouts the event loop enforces (a stalled request body, the upstream client's connect/read
timeouts) run on the loop's own clock and are exercised with an upstream that holds its answer.
"""

from __future__ import annotations

import time


class Clock:
    """`time()`: wall-clock seconds (what the kv records hold); `monotonic()`: for intervals."""

    __slots__ = ("monotonic", "time")

    def __init__(self) -> None:
        self.time = time.time
        self.monotonic = time.monotonic


clock = Clock()
