"""Prometheus metrics shared across apps (served at /metrics by django-prometheus)."""

from prometheus_client import Counter

znc_balance_changes_total = Counter(
    "znc_balance_changes_total", "Balance changes written to the ledger", ["operation"]
)
rate_limit_hits_total = Counter("rate_limit_hits_total", "Requests refused by a rate limit", ["scope"])
znc_revenue_total = Counter("znc_revenue_total", "ZNC spent on tokens and bundles (before refunds)")
