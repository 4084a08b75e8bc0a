"""The shared store (Redis, or the cache) is unreachable: answer 503, never a 500 with a traceback.

SPEC §9: when Redis (or the cache) cannot be reached, the API, the pages and the proxy answer
**503** `service_unavailable` with `Retry-After`, in the usual error shape, and the operators see
one log line, not a traceback per request. Three hooks use `outage_response()`:

- `ServiceUnavailableMiddleware.process_exception`: an outage raised inside a view (DRF throttles,
  the auth rate limits, token validation, the kv) — in every mode, DEBUG included;
- `zenzefi.errors.json_500` (Django's `handler500`): an outage raised inside a middleware;
- `zenzefi.errors.api_exception_handler`: inside DRF, so the answer is rendered like every error.

`/health` answers `unhealthy` (503) by itself when it cannot read the stored result.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

logger = logging.getLogger("zenzefi.outage")

_LOG_EVERY_SECONDS = 60.0
_log_lock = threading.Lock()
_last_logged = 0.0
_suppressed = 0


def _outage_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    try:
        import redis.exceptions

        types += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a runtime dependency
        pass
    try:
        from django_redis.exceptions import ConnectionInterrupted

        types.append(ConnectionInterrupted)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def is_outage(exc: BaseException | None) -> bool:
    """True when `exc` (or what caused it) says the shared store cannot be reached."""
    types = _outage_types()
    seen = 0
    while exc is not None and seen < 10:
        if types and isinstance(exc, types):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def current_outage() -> BaseException | None:
    """The exception being handled, when it is an outage (for `handler500`)."""
    exc = sys.exc_info()[1]
    return exc if is_outage(exc) else None


def log_outage(exc: BaseException, where: str) -> None:
    """One log line per process and minute, however many requests fail meanwhile."""
    global _last_logged, _suppressed
    now = time.monotonic()
    with _log_lock:
        if now - _last_logged < _LOG_EVERY_SECONDS and _last_logged:
            _suppressed += 1
            return
        suppressed, _suppressed = _suppressed, 0
        _last_logged = now
    logger.error(
        "Shared store unreachable (%s: %s) at %s; answering 503 service_unavailable%s",
        type(exc).__name__,
        str(exc)[:200],
        where,
        f" ({suppressed} more since the last line)" if suppressed else "",
    )


def reset_log_throttle() -> None:
    """For tests: the next outage logs again."""
    global _last_logged, _suppressed
    with _log_lock:
        _last_logged = 0.0
        _suppressed = 0


def retry_after() -> int:
    return max(1, int(getattr(settings, "SERVICE_UNAVAILABLE_RETRY_AFTER", 30)))


def outage_body() -> dict:
    return {
        "detail": _("The service is temporarily unavailable. Please try again shortly."),
        "code": "service_unavailable",
    }


def outage_response(request, exc: BaseException) -> HttpResponse:
    """503 with `Retry-After`: JSON on API paths, a plain page elsewhere. Logged once (above)."""
    log_outage(exc, request.path if request is not None else "?")
    path = request.path if request is not None else ""
    if path.startswith("/api/") or path in ("/health", "/health/detailed", "/metrics"):
        response = JsonResponse(outage_body(), status=503)
    else:
        # A self-contained template: base.html's context processors may need the store.
        html = render_to_string("503.html", {"retry_after": retry_after()})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(retry_after())
    response["Cache-Control"] = "no-store"
    # Logged above (once per minute); keep django.request from adding a traceback per request.
    response._has_been_logged = True
    return response


class ServiceUnavailableMiddleware:
    """Turns an outage raised by a view into the 503 answer (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_outage(exception):
            return outage_response(request, exception)
        return None
