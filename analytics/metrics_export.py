"""`/metrics`: django-prometheus' exporter, after refreshing the gauges that describe shared state.

Values that the beat jobs compute in a Celery worker (health of the upstream, the last backup, the
`gauges` job's counts) never reach the web processes' metrics by themselves: the worker is another
process, usually another container. The jobs keep them in the shared key-value store, and this view
copies them into gauges right before rendering, so whichever web worker Prometheus reaches answers
the same. In Prometheus multiprocess mode (PROMETHEUS_MULTIPROC_DIR) django-prometheus' view reads
every worker's files through `MultiProcessCollector`, so counters are summed across workers.
"""

from __future__ import annotations

import logging
import os

from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView

from zenzefi.metrics import (
    zenzefi_health_checked_timestamp_seconds,
    zenzefi_last_backup_timestamp_seconds,
    zenzefi_upstream_up,
)

logger = logging.getLogger(__name__)
NAN = float("nan")


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _health_gauges() -> None:
    from datetime import datetime

    from monitoring.health import UNHEALTHY, health_cached

    result = health_cached()
    if not result:
        zenzefi_upstream_up.set(NAN)
        zenzefi_health_checked_timestamp_seconds.set(0)
        return
    upstream = result.get("components", {}).get("upstream")
    zenzefi_upstream_up.set(NAN if upstream is None else float(upstream.get("status") != UNHEALTHY))
    checked_at = result.get("checked_at")
    zenzefi_health_checked_timestamp_seconds.set(
        datetime.fromisoformat(checked_at).timestamp() if checked_at else 0
    )


def _backup_gauge() -> None:
    from backups.services import LAST_BACKUP_KEY
    from zenzefi.kv import get_kv

    last = get_kv().get(LAST_BACKUP_KEY) or {}
    zenzefi_last_backup_timestamp_seconds.set(float(last.get("timestamp", 0)))


def _job_gauges() -> None:
    """In multiprocess mode the `gauges` job's figures are copied in here (outside it, the
    monitoring app's gauges read them at scrape time by themselves). `active_proxy_sessions` is
    left to the proxy, whose session services set it in the web processes themselves."""
    if not multiprocess_mode():
        return
    from analytics.gauges import cached_figure
    from monitoring.metrics import active_tokens_gauge, registered_users_gauge

    active_tokens_gauge.set(cached_figure("active_tokens"))
    registered_users_gauge.labels(state="all").set(cached_figure("users_total"))
    registered_users_gauge.labels(state="active").set(cached_figure("users_active"))


REFRESHERS = (_health_gauges, _backup_gauge, _job_gauges)


def refresh_scrape_gauges() -> None:
    for refresh in REFRESHERS:
        try:
            refresh()
        except Exception:  # a scrape must answer even when the store or an app is unavailable
            logger.warning("could not refresh scrape-time gauges (%s)", refresh.__name__, exc_info=True)


@never_cache
def metrics(request):
    refresh_scrape_gauges()
    return ExportToDjangoView(request)
