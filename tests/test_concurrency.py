"""The race-test helper itself: every callable runs in its own thread, all released together;
results come back in the order of the callables, exceptions as values."""

from __future__ import annotations

import threading

from tests.concurrency import run_concurrently, run_threads


def test_results_come_back_in_submission_order_with_exceptions_as_values():
    inside = threading.Barrier(4, timeout=30)  # passes only if all four run at the same time

    def job(i: int):
        inside.wait()
        if i == 2:
            raise ValueError("two")
        return i * 10

    results = run_concurrently([lambda i=i: job(i) for i in range(4)])
    assert results[0] == 0 and results[1] == 10 and results[3] == 30
    assert isinstance(results[2], ValueError) and str(results[2]) == "two"


def test_run_threads_runs_one_function_n_times_in_distinct_threads():
    seen = []
    results = run_threads(5, lambda: seen.append(threading.get_ident()) or "ok")
    assert results == ["ok"] * 5
    assert len(set(seen)) == 5
