"""Prometheus metrics shared across apps (served at /metrics by django-prometheus)."""

from prometheus_client import Counter, Gauge

znc_balance_changes_total = Counter(
    "znc_balance_changes_total", "Balance changes written to the ledger", ["operation"]
)
rate_limit_hits_total = Counter("rate_limit_hits_total", "Requests refused by a rate limit", ["scope"])
znc_revenue_total = Counter("znc_revenue_total", "ZNC spent on tokens and bundles (before refunds)")

# --- Scrape-time gauges (set by analytics.metrics_export just before /metrics is rendered, from the
# results the beat jobs keep in the shared store; "mostrecent" across worker processes).
zenzefi_upstream_up = Gauge(
    "zenzefi_upstream_up",
    "1 when the last health check reached the Zenzefi upstream, 0 when it was down, NaN before any check",
    multiprocess_mode="mostrecent",
)
zenzefi_health_checked_timestamp_seconds = Gauge(
    "zenzefi_health_checked_timestamp_seconds",
    "When the health-check job last stored a result (Unix time; 0 when there is none)",
    multiprocess_mode="mostrecent",
)
zenzefi_last_backup_timestamp_seconds = Gauge(
    "zenzefi_last_backup_timestamp_seconds",
    "When the last successful database backup was taken (Unix time; 0 when none is recorded)",
    multiprocess_mode="mostrecent",
)
