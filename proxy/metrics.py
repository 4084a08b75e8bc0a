"""Prometheus metrics of the proxy (SPEC §16). Labels never carry raw paths."""

from prometheus_client import Counter, Gauge, Histogram

proxy_requests_total = Counter(
    "proxy_requests_total", "Requests answered by the proxy", ["method", "status_code"]
)
proxy_request_duration_seconds = Histogram(
    "proxy_request_duration_seconds",
    "Time from the request's arrival to the end of the proxied response",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
proxy_bytes_transferred_total = Counter(
    "proxy_bytes_transferred_total",
    "Body bytes through the proxy: in = client to upstream, out = upstream to client",
    ["direction"],
)
active_proxy_sessions = Gauge(
    "active_proxy_sessions",
    "Open proxy sessions (set by the session services)",
    multiprocess_mode="mostrecent",
)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"
