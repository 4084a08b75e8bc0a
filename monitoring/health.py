"""Health checks (the `health checks` beat job) and the cached result `/health` answers from.

Each component reports `healthy`, `degraded` (works, but slowly or partly) or `unhealthy`, with
its response time. The overall status is the worst of the critical components (database, cache,
upstream); a broker that cannot be reached makes the platform `degraded` (the web keeps
working, jobs wait). The result lives in the shared key-value store for HEALTH_CACHE_TTL seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from zenzefi.kv import get_kv
from zenzefi.kvkeys import HEALTH_KEY

logger = logging.getLogger(__name__)
HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"
CRITICAL = ("database", "cache", "upstream")
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


class Degraded(Exception):
    """The component answered, but not well (e.g. the upstream's 5xx)."""


def _error(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _timed(check: Callable[[], dict | None]) -> dict:
    started = time.perf_counter()
    try:
        extra = check() or {}
        status, error = HEALTHY, None
    except Degraded as exc:
        extra, status, error = {}, DEGRADED, str(exc)
    except Exception as exc:
        extra, status, error = {}, UNHEALTHY, _error(exc)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    if status == HEALTHY and elapsed_ms > settings.HEALTH_DEGRADED_MS:
        status, error = DEGRADED, f"slow: {elapsed_ms} ms"
    result = {"status": status, "response_time_ms": elapsed_ms, **extra}
    if error:
        result["error"] = error
    return result


def check_database() -> dict:
    def probe():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"vendor": connection.vendor}

    return _timed(probe)


def check_cache() -> dict:
    def probe():
        key, value = f"health:probe:{uuid.uuid4().hex}", uuid.uuid4().hex
        cache.set(key, value, 10)
        try:
            if cache.get(key) != value:
                raise RuntimeError("the cache did not return what was written")
        finally:
            cache.delete(key)
        return {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}

    return _timed(probe)


def check_broker() -> dict:
    from zenzefi.celery import app

    def probe():
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            return {"transport": str(conn.transport_cls)}

    return _timed(probe)


def check_upstream() -> dict:
    timeout = settings.HEALTH_CHECK_TIMEOUT

    def probe():
        response = httpx.get(
            settings.ZENZEFI_TARGET_URL,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            follow_redirects=False,
            trust_env=False,
        )
        if response.status_code >= 500:
            raise Degraded(f"HTTP {response.status_code}")
        return {"status_code": response.status_code}

    return _timed(probe)


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "upstream": check_upstream,
}


def overall_status(components: dict[str, dict]) -> str:
    worst = HEALTHY
    for name, result in components.items():
        status = result["status"]
        if name not in CRITICAL and status == UNHEALTHY:
            status = DEGRADED
        if _RANK[status] > _RANK[worst]:
            worst = status
    return worst


def health_check_run() -> dict:
    """Run every check, store the result for HEALTH_CACHE_TTL seconds and return it."""
    components = {name: check() for name, check in CHECKS.items()}
    result = {
        "status": overall_status(components),
        "checked_at": datetime.now(UTC).isoformat(),
        "components": components,
    }
    if result["status"] != HEALTHY:
        failing = {
            name: c.get("error", c["status"]) for name, c in components.items() if c["status"] != HEALTHY
        }
        logger.warning("health: %s %s", result["status"], failing)
    try:
        get_kv().set(HEALTH_KEY, result, settings.HEALTH_CACHE_TTL)
    except Exception as exc:  # the store is down: the cache check says so; /health will too
        logger.warning("health: cannot store the result (%s)", exc)
    return result


def health_cached() -> dict | None:
    """The last stored result, or None (never checked yet, or older than HEALTH_CACHE_TTL).
    Raises when the store itself cannot be reached."""
    return get_kv().get(HEALTH_KEY)


async def ahealth_cached() -> dict | None:
    """`health_cached` for async callers (the proxy's workers): one async kv read, no thread hop
    on Redis."""
    return await get_kv().aget(HEALTH_KEY)


def unhealthy_since(result: dict | None, component: str) -> float | None:
    """When a stored result found `component` unhealthy (its `checked_at`, epoch seconds), or None
    when it did not (or there is no result)."""
    status = ((result or {}).get("components") or {}).get(component) or {}
    if status.get("status") != UNHEALTHY:
        return None
    return datetime.fromisoformat(result["checked_at"]).timestamp()
