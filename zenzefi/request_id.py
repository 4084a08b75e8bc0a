"""Request ids: one id per request, in every log line, audit entry and upstream request it causes.

The id comes from a sane incoming `X-Request-ID` (set by a load balancer or the desktop client) or
is generated (32 hex characters). It lives in a context variable for the duration of the request
(contextvars follow both threads started by asgiref and asyncio tasks), and the response carries
it back as `X-Request-ID`.

- Django requests: `RequestIdMiddleware` (first in MIDDLEWARE after Prometheus' "before" hook).
- The proxy's lean ASGI path (no Django middleware): wrap the ASGI app in `RequestIdASGIMiddleware`,
  or call `request_id_from_asgi_headers(scope["headers"])` + `set_request_id(...)` itself, and send
  `current_request_id()` upstream as `X-Request-ID` (dropping the client's own header).
- Celery tasks and management commands have no request id: `current_request_id()` is None there.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
_HEADER_BYTES = b"x-request-id"
# Letters, digits and a few separators, at most 128 characters: anything else (spaces, quotes,
# newlines, control characters that could forge log lines) is replaced by a generated id.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")

_request_id: ContextVar[str | None] = ContextVar("zenzefi_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def sanitize_request_id(value: str | bytes | None) -> str | None:
    """The incoming value if it is a sane id, else None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip()
    return value if _SANE.fullmatch(value) else None


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return _request_id.get()


def set_request_id(value: str | None) -> Token:
    return _request_id.set(value)


def reset_request_id(token: Token) -> None:
    _request_id.reset(token)


def request_id_from_asgi_headers(headers) -> str:
    """For raw ASGI apps: the sane incoming X-Request-ID among `scope["headers"]`, or a new one."""
    for name, value in headers:
        if name == _HEADER_BYTES:
            return sanitize_request_id(value) or new_request_id()
    return new_request_id()


class RequestIdMiddleware:
    """Django middleware (sync and async): sets the request id and returns it as X-Request-ID."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _start(self, request) -> tuple[str, Token]:
        request_id = sanitize_request_id(request.META.get(REQUEST_ID_META)) or new_request_id()
        request.request_id = request_id
        return request_id, set_request_id(request_id)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request_id, token = self._start(request)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    async def __acall__(self, request):
        request_id, token = self._start(request)
        try:
            response = await self.get_response(request)
        finally:
            reset_request_id(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdASGIMiddleware:
    """ASGI middleware for paths that bypass Django's middleware (the proxy): sets the request id
    for the whole request (streaming included) and adds X-Request-ID to the response headers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from_asgi_headers(scope.get("headers", ()))
        header = (_HEADER_BYTES, request_id.encode("ascii"))

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_BYTES]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = set_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)
