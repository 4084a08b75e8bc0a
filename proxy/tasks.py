"""Proxy jobs (scheduled by Celery beat with the jobs work; callable now). Both are idempotent."""

from celery import shared_task

from proxy.services import sessions_close_idle, sessions_flush_counters


@shared_task(name="proxy.flush_proxy_counters")
def flush_proxy_counters() -> int:
    """Write the session counters accumulated in the cache into ProxySession rows."""
    return sessions_flush_counters()


@shared_task(name="proxy.close_idle_sessions")
def close_idle_sessions() -> int:
    """Flush, then end the sessions without a request for SESSION_IDLE_MINUTES."""
    sessions_flush_counters()
    return len(sessions_close_idle())
