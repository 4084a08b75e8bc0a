"""Database work from the proxy's event loop.

The proxy runs outside Django's request cycle, so nothing closes its connections for it: each
service call runs in a worker thread and closes that thread's connection afterwards, and the one
thread where token validation's cache misses run (asgiref's shared thread for thread-sensitive
`sync_to_async`, which `tokens.validation` uses) gets Django's `close_old_connections` now and then
(a closed or too-old connection is dropped there), off the request's path.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from proxy.clock import clock

logger = logging.getLogger("proxy")
RECYCLE_SECONDS = 30.0


def db_call(fn):
    """`fn` as a coroutine function: run in a worker thread, its connection closed afterwards."""

    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


# Thread-sensitive without an outer request context: asgiref runs it on its one shared thread,
# the same one as validation's `sync_to_async(_load)`.
_recycle_shared_thread = sync_to_async(close_old_connections, thread_sensitive=True)


class ConnectionRecycler:
    """Every RECYCLE_SECONDS (per worker), `close_old_connections` on the validation thread, as a
    task of its own: the request that triggers it does not wait for it."""

    def __init__(self) -> None:
        self.next_at = 0.0
        self._tasks: set[asyncio.Task] = set()

    def maybe_recycle(self) -> None:
        now = clock.monotonic()
        if now >= self.next_at:
            self.next_at = now + RECYCLE_SECONDS
            task = asyncio.ensure_future(self._recycle())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _recycle() -> None:
        try:
            await _recycle_shared_thread()
        except Exception:  # a connection that fails to close is dropped anyway
            logger.exception("proxy: could not recycle the validation thread's connection")
