"""The `gauges` job: count active tokens, open proxy sessions and users into Prometheus gauges.

The job runs in a Celery worker, but `/metrics` is served by the web processes. So the figures
are also kept in the shared key-value store, and (outside Prometheus multiprocess mode) the
gauges defined here read them from there at scrape time. In multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`) the values the job sets reach every process through the shared
directory instead.
"""

from __future__ import annotations

import os
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from monitoring.metrics import active_tokens_gauge, registered_users_gauge
from tokens.models import AccessToken
from zenzefi.kv import get_kv
from zenzefi.kvkeys import GAUGES_KEY

GAUGES_TTL = 300  # five missed runs: then the gauges read 0 rather than a stale figure

# From this many users on, `registered_users{state="all"}` is PostgreSQL's own estimate of the
# table's rows (`pg_class.reltuples`, kept by autovacuum/ANALYZE), not a COUNT(*): the count read
# the whole primary key every 30 s (LARGE, 200 000 users: 62 ms of the job's ~145 ms). SPEC §10
# asks for "users" among the gauges, no exact figure; a monitoring gauge of a six-digit number
# drifting by the rows since the last ANALYZE is fine. Below it (and on SQLite, and before the
# first ANALYZE: reltuples -1) the count is exact and cheap.
USERS_EXACT_BELOW = 100_000


def _proxy_gauge():
    try:
        from proxy.metrics import active_proxy_sessions
    except ImportError:  # pragma: no cover - the proxy app is optional for this module
        return None
    return active_proxy_sessions


def _open_sessions() -> int:
    try:
        from proxy.models import ProxySession
    except ImportError:  # pragma: no cover
        return 0
    return ProxySession.objects.filter(ended_at__isnull=True).count()


def _users_total(users) -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(users.model._meta.db_table)],
            )
            row = cursor.fetchone()
        if row and row[0] >= USERS_EXACT_BELOW:
            return int(row[0])
    return users.count()  # an index-only scan of the primary key


def _active_tokens(now: datetime) -> int:
    """THE meaning of "active token" (`AccessTokenQuerySet.active`: activated, not expired, not
    revoked), counted from the partial index `token_running_expiry_idx` alone (expires_at, over
    the tokens with `expired_at` and `revoked_at` NULL): an index-only scan. `activated_at IS NOT
    NULL` is left to the constraint `token_expires_with_activation` (no expiry without
    activation), which `expires_at > now` already implies; spelled out, it sent PostgreSQL to
    the heap for every running token (LARGE, 47 000: 61 ms -> 13 ms)."""
    return (
        AccessToken.objects.order_by()
        .filter(expired_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)
        .count()
    )


def gauge_figures(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    users = get_user_model().objects.order_by()
    total = _users_total(users)
    inactive = users.filter(is_active=False).count()  # few rows: a scan of the partial index
    return {
        "active_tokens": _active_tokens(now),
        "active_proxy_sessions": _open_sessions(),
        "users_total": total,
        "users_active": total - inactive,
    }


def gauges_refresh(*, now: datetime | None = None) -> dict[str, int]:
    """Compute the figures, set the gauges in this process and share them through the store."""
    figures = gauge_figures(now=now)
    active_tokens_gauge.set(figures["active_tokens"])
    registered_users_gauge.labels(state="all").set(figures["users_total"])
    registered_users_gauge.labels(state="active").set(figures["users_active"])
    proxy_gauge = _proxy_gauge()
    if proxy_gauge is not None:
        proxy_gauge.set(figures["active_proxy_sessions"])
    get_kv().set(GAUGES_KEY, figures, GAUGES_TTL)
    return figures


def cached_figure(name: str) -> float:
    try:
        figures = get_kv().get(GAUGES_KEY) or {}
    except Exception:  # a scrape must never fail because the store is down
        return 0.0
    return float(figures.get(name, 0))


def install_scrape_functions() -> None:
    """Outside multiprocess mode, make this process's gauges read the job's shared figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    active_tokens_gauge.set_function(lambda: cached_figure("active_tokens"))
    registered_users_gauge.labels(state="all").set_function(lambda: cached_figure("users_total"))
    registered_users_gauge.labels(state="active").set_function(lambda: cached_figure("users_active"))
