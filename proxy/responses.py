"""What the proxy answers itself: its errors (`{"detail", "code"}` JSON), the sandbox headers of the
platform's origin, and the per-request metrics."""

from __future__ import annotations

import json

import redis.exceptions

from proxy.metrics import method_label, proxy_requests_total

SANDBOX_HEADERS = [(b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff")]
KV_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
KV_CODE = "service_unavailable"  # SPEC §9, as zenzefi.outage answers the API and pages
KV_DETAIL = "The service is temporarily unavailable. Please try again shortly."

_request_counters: dict[tuple[str, int], object] = {}


class ProxyError(Exception):
    """An answer of the proxy's own: status, `code`, `detail` and extra headers."""

    def __init__(self, status: int, code: str, detail: str, headers: list | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or []


class ClientGone(Exception):
    """The client disconnected while we were reading its request body."""


class BodyTimeout(Exception):
    """The client went silent for PROXY_BODY_TIMEOUT while we were reading its request body."""


def sandboxed(send):
    """Every response on the platform's origin: CSP sandbox (no allow-same-origin) and nosniff."""

    async def wrapped(message):
        if message["type"] == "http.response.start":
            kept = [h for h in message["headers"] if h[0] != b"x-content-type-options"]
            message["headers"] = kept + SANDBOX_HEADERS
        await send(message)

    return wrapped


async def send_json(send, status: int, body: dict, headers: list | None = None) -> int:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
    return status


def count_request(method: str, status: int) -> None:
    """`proxy_requests_total{method,status_code}` (label children cached: this runs per request)."""
    key = (method, status)
    counter = _request_counters.get(key)
    if counter is None:
        counter = _request_counters[key] = proxy_requests_total.labels(method_label(method), str(status))
    counter.inc()
