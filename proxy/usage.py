"""Session counters, batched per worker: requests, bytes in/out and "last seen" of each proxy
session reach the kv (`proxy.state.touch_many`) within PROXY_COUNTER_FLUSH_SECONDS (at once when
that is 0), one pipeline for every session of the batch; the byte metrics move with every report."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from proxy.clock import clock
from proxy.metrics import proxy_bytes_transferred_total
from proxy.request import Ctx
from proxy.state import get_state

logger = logging.getLogger("proxy")
_bytes_in = proxy_bytes_transferred_total.labels(direction="in")
_bytes_out = proxy_bytes_transferred_total.labels(direction="out")


class Usage:
    def __init__(self) -> None:
        self.pending: dict[str, dict] = {}  # session key -> counters not yet written to the kv
        self._flush_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()

    async def record(self, digest: str, record: dict, ctx: Ctx, *, final: bool = True) -> None:
        """Count the request's bytes since its last report (and the request itself when `final`)
        for its session."""
        bytes_in, bytes_out = ctx.bytes_in - ctx.reported_in, ctx.bytes_out - ctx.reported_out
        ctx.reported_in, ctx.reported_out = ctx.bytes_in, ctx.bytes_out
        if bytes_in:
            _bytes_in.inc(bytes_in)
        if bytes_out:
            _bytes_out.inc(bytes_out)
        sid = record["sid"]
        entry = self.pending.get(sid)
        if entry is None:
            entry = self.pending[sid] = {"digest": digest, "record": record, "n": 0, "bi": 0, "bo": 0}
        entry["n"] += 1 if final else 0
        entry["bi"] += bytes_in
        entry["bo"] += bytes_out
        entry["ts"] = clock.time()
        interval = settings.PROXY_COUNTER_FLUSH_SECONDS
        if interval <= 0:
            await self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(interval, self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_handle = None
        task = asyncio.ensure_future(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        if self._flush_handle is not None:  # written now: the scheduled flush is moot
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self.pending:
            return
        entries, self.pending = list(self.pending.values()), {}
        try:
            await get_state().touch_many(entries, settings.SESSION_IDLE_MINUTES * 60 + 600)
        except Exception:  # counters are statistics: a lost batch is logged, never a failed request
            logger.exception("proxy: could not write %d session counter batches", len(entries))

    async def aclose(self) -> None:
        """Worker shutdown: write what is pending."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        await self.flush()
