"""The circuit breaker (per worker process) and its link to the health-check job.

After PROXY_CIRCUIT_FAILURES consecutive connection failures the breaker opens: requests get 503
`upstream_circuit_open` with `Retry-After` at once until PROXY_CIRCUIT_COOLDOWN has passed; then one
probe goes through and closes it on success (or re-opens it on failure). It also opens when the
health-check job (`monitoring.health`) found the upstream unreachable after this worker's last good
answer; each worker reads that verdict every HEALTH_POLL_SECONDS. Time is `proxy.clock`.
"""

from __future__ import annotations

import logging

from django.conf import settings

from monitoring.health import ahealth_cached, unhealthy_since
from proxy.clock import clock
from proxy.responses import ProxyError

logger = logging.getLogger("proxy")
HEALTH_POLL_SECONDS = 5.0  # how often a worker reads the health-check job's verdict


class CircuitBreaker:
    def __init__(self):
        self.health_read_at = 0.0  # monotonic time of the last look at the health check's verdict
        self.reset()

    def reset(self) -> None:
        self.last_success = getattr(self, "last_success", 0.0)  # wall clock of the last upstream answer
        self.failures = 0
        self.opened_at: float | None = None
        self.probe_started: float | None = None

    def check(self, now: float, cooldown: float) -> float | None:
        """None: go ahead. A number: refused, retry after that many seconds."""
        if self.opened_at is None:
            return None
        waited = now - self.opened_at
        if waited < cooldown:
            return cooldown - waited
        if self.probe_started is not None and now - self.probe_started < cooldown:
            return 1.0  # a probe is under way
        self.probe_started = now
        return None

    def success(self) -> None:
        self.last_success = clock.time()
        if self.failures or self.opened_at is not None:
            self.reset()

    def trip(self, now: float) -> None:
        """Open now (the health check found the upstream down), unless already open."""
        if self.opened_at is None:
            self.opened_at = now
            self.probe_started = None

    def failure(self) -> None:
        """A connection failure (refused, unreachable, no connection in time, closed on us)."""
        self.failures += 1
        if self.probe_started is not None or self.failures >= settings.PROXY_CIRCUIT_FAILURES:
            self.opened_at = clock.monotonic()
            self.probe_started = None

    async def admit(self) -> None:
        """Before a request goes upstream: follow the health check's verdict (every
        HEALTH_POLL_SECONDS), then 503 at once while open (a probe goes through after the cool-down)."""
        now = clock.monotonic()
        if now - self.health_read_at >= HEALTH_POLL_SECONDS:
            self.health_read_at = now
            await self._follow_health_check(now)
        retry = self.check(now, settings.PROXY_CIRCUIT_COOLDOWN)
        if retry is not None:
            raise ProxyError(
                503,
                "upstream_circuit_open",
                "The Zenzefi host is unavailable; retry later.",
                [(b"retry-after", str(max(1, round(retry))).encode())],
            )

    async def _follow_health_check(self, now: float) -> None:
        """An upstream the health-check job found unreachable after our last good answer opens the
        breaker; probes then close it."""
        try:
            checked = unhealthy_since(await ahealth_cached(), "upstream")
        except Exception:  # no verdict (or no store): the breaker's own counting still works
            return
        if checked is not None and checked > self.last_success:
            self.trip(now)
