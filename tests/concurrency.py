"""Run callables at the same moment from threads (race tests; PostgreSQL row locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_concurrently(fns: list[Callable[[], Any]]) -> list[Any]:
    """Start every callable behind one barrier; return each result or the exception it raised
    (in completion order). Each thread closes its own database connection."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = []

    def wrapped(fn):
        try:
            barrier.wait()
            results.append(fn())
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_threads(n: int, fn: Callable[[], Any]) -> list[Any]:
    """`fn` from `n` threads at once."""
    return run_concurrently([fn] * n)
