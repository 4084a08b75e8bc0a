"""Run callables at the same moment from threads (race tests; PostgreSQL row locks).

Every race test uses these instead of its own threads and barrier: each thread waits at one
barrier, then calls its function, and closes its own database connection however it ended."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

# Long enough for a loaded machine; a thread that never reaches the barrier fails the test
# (BrokenBarrierError in every result) instead of hanging it.
BARRIER_TIMEOUT = 60.0


def run_concurrently(fns: list[Callable[[], Any]]) -> list[Any]:
    """Start every callable behind one barrier; return each result or the exception it raised,
    in the order of `fns` (result i belongs to fns[i])."""
    barrier = threading.Barrier(len(fns), timeout=BARRIER_TIMEOUT)
    results: list[Any] = [None] * len(fns)

    def wrapped(index: int, fn: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = fn()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_threads(n: int, fn: Callable[[], Any]) -> list[Any]:
    """`fn` from `n` threads at once."""
    return run_concurrently([fn] * n)
