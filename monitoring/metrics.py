"""Gauges of the platform's state (SPEC §16), refreshed by the `gauges` beat job.

`active_proxy_sessions` belongs to the proxy (`proxy.metrics`); the job sets it too but never
defines it a second time.
"""

from prometheus_client import Gauge

active_tokens_gauge = Gauge(
    "active_tokens_gauge",
    "Access tokens whose clock is running (activated, not expired, not revoked)",
    multiprocess_mode="mostrecent",
)
registered_users_gauge = Gauge(
    "registered_users", "User accounts, by state", ["state"], multiprocess_mode="mostrecent"
)
