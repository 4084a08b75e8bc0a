"""Prometheus multiprocess mode for several gunicorn workers (SPEC §16).

With `PROMETHEUS_MULTIPROC_DIR` set in the environment *before* the workers start (prometheus_client
reads it at import time), every worker writes its metric values into memory-mapped files there, and
`/metrics` (django-prometheus' `ExportToDjangoView`) sums them with `MultiProcessCollector`, whichever
worker answers. Without it, each worker would report only its own requests.

gunicorn.conf.py calls the hooks here:

    from zenzefi import prometheus_multiproc
    def on_starting(server): prometheus_multiproc.on_starting(server)
    def child_exit(server, worker): prometheus_multiproc.child_exit(server, worker)

`on_starting` empties the folder (files of an earlier run would be added to this run's counters);
`child_exit` drops a dead worker's live gauges (its counters stay: totals must never go down).
The folder must be local to one host and one master: give each container its own (a tmpfs).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else None


def prepare_dir() -> Path | None:
    """Create the folder and remove the metric files of an earlier run. None when the mode is off."""
    directory = multiproc_dir()
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def mark_dead(pid: int) -> None:
    if multiproc_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


# --- gunicorn server hooks -------------------------------------------------------------------------


def on_starting(server) -> None:
    prepare_dir()


def child_exit(server, worker) -> None:
    mark_dead(worker.pid)
