"""One error family for services and one JSON error shape for the API: {"detail", "code"}.

Services raise `ApplicationError` subclasses; the DRF exception handler below turns them
(and DRF's own exceptions) into `{"detail": "...", "code": "..."}` with the right status.
Validation errors also carry `errors`: the per-field messages.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "error"
    default_detail = "The request could not be completed."

    def __init__(self, detail: str | None = None, *, code: str | None = None, extra: dict | None = None):
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        self.extra = extra or {}
        super().__init__(self.detail)


class InvalidInput(ApplicationError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"
    default_detail = "Invalid input."


class InsufficientFunds(ApplicationError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    code = "insufficient_funds"
    default_detail = "Insufficient balance."


class Forbidden(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    default_detail = "Not found."


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class Unprocessable(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "unprocessable"
    default_detail = "The request cannot be processed."


class RateLimited(ApplicationError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "rate_limited"
    default_detail = "Too many requests. Try again later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 60, **kwargs: Any):
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(ApplicationError):
    """503: a service the platform needs (the shared store, a provider) is unreachable."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"
    default_detail = "A service the platform needs is unreachable. Try again shortly."
    retry_after = 30


def _first_message(data: Any) -> str:
    """A one-line human summary of DRF's nested validation errors."""
    if isinstance(data, dict):
        for field, value in data.items():
            message = _first_message(value)
            if field in ("non_field_errors", "detail"):
                return message
            return f"{field}: {message}"
        return "Invalid input."
    if isinstance(data, list) and data:
        return _first_message(data[0])
    return str(data)


def error_body(detail: str, code: str, **extra: Any) -> dict:
    return {"detail": detail, "code": code, **extra}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    from zenzefi.outage import is_outage, log_outage, outage_body, retry_after

    if is_outage(exc):  # Redis/cache unreachable: 503, never a 500 with a traceback
        request = context.get("request")
        log_outage(exc, request.path if request is not None else "?")
        response = Response(outage_body(), status=503)
        response["Retry-After"] = str(retry_after())
        response._has_been_logged = True
        return response
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.detail, exc.code, **exc.extra), status=exc.status_code)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        elif exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
            # Every 503 says when to come back (SPEC §9, the OpenAPI contract).
            response["Retry-After"] = str(getattr(exc, "retry_after", None) or ServiceUnavailable.retry_after)
        return response

    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, drf_exceptions.ValidationError):
        data = exc.detail
        codes = exc.get_codes()
        if isinstance(data, list | tuple):
            data = {"non_field_errors": data}
            codes = {"non_field_errors": codes}
        response.data = error_body(_first_message(data), "invalid", errors=data)
    elif isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes()
        if isinstance(detail, dict):  # e.g. simplejwt's {"detail", "code", "messages"}
            message = str(detail.get("detail", _first_message(detail)))
            code = detail.get("code", code)
            code = code if isinstance(code, str) else exc.default_code
        else:
            message = str(detail)
            code = code if isinstance(code, str) else exc.default_code
        response.data = error_body(message, code)
    return response


def json_404(request, exception=None):
    """Non-API 404s keep Django's page; API paths answer with the JSON error shape."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("Not found.", "not_found"), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_500(request):
    from zenzefi.outage import current_outage, outage_response

    outage = current_outage()  # an outage raised inside a middleware (see zenzefi/outage.py)
    if outage is not None:
        return outage_response(request, outage)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("Internal server error.", "server_error"), status=500)
    from django.views.defaults import server_error

    return server_error(request)
