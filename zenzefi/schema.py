"""The OpenAPI contract (SPEC §13): every status an operation can answer, with the one error shape.

drf-spectacular's own mechanisms, no hand-written dicts per view:

- `AutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to every operation the error answers
  its view can give, read from the view itself: 400 when it takes a body or parameters, 401 when
  it authenticates, 403 when a permission class other than AllowAny/IsAuthenticated guards it (and
  for session-authenticated writes: CSRF), 404 when the path has a parameter, 415 for bodies, 429
  when a throttle applies, 503 always (the shared store unreachable). 429 and 503 carry
  `Retry-After`. An `Idempotency-Key` header adds its 400/409/422.
- Views add what only they know with `api_errors({402: ["insufficient_funds"], ...})` inside
  `extend_schema(responses=...)`; codes for the same status are merged, never replaced.
- Every error answer is the `Error` component `{detail, code, errors?}`; the description lists the
  codes that status can carry, and an example shows the first.
- `postprocess_schema` (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) marks every PATCH body
  `minProperties: 1`: an empty PATCH is a 400 (`no_changes`/`invalid`).
"""

from __future__ import annotations

from collections.abc import Iterable

from drf_spectacular.extensions import OpenApiSerializerFieldExtension, OpenApiViewExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

from zenzefi.fields import decimal_pattern

IDEMPOTENCY_HEADER_NAME = "Idempotency-Key"  # idempotency.schema.IDEMPOTENCY_HEADER's name

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

STATUS_TITLES = {
    400: "Invalid input",
    401: "Not authenticated",
    402: "Insufficient balance",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable",
    429: "Too many requests",
    502: "Upstream error",
    503: "Service unavailable",
}

EXAMPLE_DETAILS = {
    400: "amount: Ensure this value is greater than or equal to 1.",
    401: "Authentication credentials were not provided.",
    402: "Insufficient balance.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    409: "The request conflicts with the current state.",
    415: 'Unsupported media type "text/plain" in request.',
    422: "This Idempotency-Key was already used with a different request body.",
    429: "Request was throttled. Expected available in 42 seconds.",
    502: "The payment provider did not answer.",
    503: "A service the platform needs is unreachable. Try again shortly.",
}


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (zenzefi.errors)."""

    detail = serializers.CharField(help_text="A human-readable, one-line message.")
    code = serializers.CharField(help_text="A stable, machine-readable code (listed per status).")
    errors = serializers.DictField(
        required=False,
        help_text="Validation errors only: the messages per field (`non_field_errors` for the body).",
    )


class ErrorResponse(OpenApiResponse):
    """An error answer with the codes it can carry; merged by `AutoSchema`."""

    def __init__(self, status: int, codes: Iterable[str]):
        self.status = int(status)
        self.codes = list(dict.fromkeys(codes))
        super().__init__(response=ErrorSerializer)


def api_errors(statuses: dict[int, Iterable[str]]) -> dict[int, ErrorResponse]:
    """`extend_schema(responses={200: X, **api_errors({409: ["already_revoked"]})})`."""
    return {int(status): ErrorResponse(status, codes) for status, codes in statuses.items()}


def _error_response(status: int, codes: list[str]) -> OpenApiResponse:
    listed = ", ".join(f"`{code}`" for code in codes)
    title = STATUS_TITLES.get(status, "Error")
    return OpenApiResponse(
        response=ErrorSerializer,
        description=f"{title}. `code` is one of: {listed}.",
        examples=[
            OpenApiExample(
                f"{status} {codes[0]}",
                value={"detail": EXAMPLE_DETAILS.get(status, title + "."), "code": codes[0]},
                status_codes=[str(status)],
                response_only=True,
            )
        ],
    )


def _status_of(key) -> int | None:
    key = key[0] if isinstance(key, tuple) else key
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


class AutoSchema(SpectacularAutoSchema):
    def map_parsers(self):
        """Request bodies are JSON in the contract (whatever JSON parser class reads them); the
        browsable API's form posts still work, for people, but are not part of it."""
        return [media for media in super().map_parsers() if media.split(";")[0] == "application/json"]

    def _get_request_for_media_type(self, serializer, direction="request"):
        """A PATCH whose view validates the whole body (`whole_body_patch = True` on the
        serializer) is documented with its required fields, not as drf-spectacular's partial
        `Patched…` body."""
        if self.method == "PATCH" and getattr(serializer, "whole_body_patch", False):
            self.method = "PUT"
            try:
                return super()._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def _has_idempotency_header(self) -> bool:
        # By the header's name (the HTTP contract), not by importing the idempotency app's
        # parameter object: the project package imports no app (docs/architecture.md "Layers").
        names = (getattr(param, "name", None) for param in self.get_override_parameters())
        return IDEMPOTENCY_HEADER_NAME in names

    def generic_error_codes(self, success_serializer=None) -> dict[int, list[str]]:
        """The error answers this operation's view can give, read from the view."""
        view = self.view
        codes: dict[int, list[str]] = {}
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        paginated = (
            self.method == "GET"
            and self._is_list_view(success_serializer)
            and self._get_paginator() is not None
        )
        if has_body or paginated or self.get_override_parameters():
            codes[400] = ["invalid"]
            if has_body:
                codes[400].append("parse_error")
            if paginated:
                codes[400].append("invalid_pagination")
        if self._has_idempotency_header():
            codes.setdefault(400, []).append("invalid_idempotency_key")
            codes[409] = ["idempotency_in_progress"]
            codes[422] = ["idempotency_key_reused"]

        authenticators = view.get_authenticators()
        if authenticators:
            codes[401] = ["not_authenticated", "authentication_failed", "token_not_valid"]
        permissions = view.get_permissions()
        if any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in permissions):
            codes[403] = ["permission_denied"]
        if self.method in UNSAFE_METHODS and any(
            isinstance(a, SessionAuthentication) for a in authenticators
        ):
            codes[403] = ["permission_denied"]  # a session without its CSRF token
        if "{" in self.path:
            codes[404] = ["not_found"]
        if has_body:
            codes[415] = ["unsupported_media_type"]
        if view.get_throttles():
            codes[429] = ["throttled"]
        codes[503] = ["service_unavailable"]
        return codes

    def responses_with_errors(self) -> dict:
        """The declared answers (success first) plus every error answer, codes merged."""
        declared = self.get_response_serializers()
        if isinstance(declared, dict) and all(isinstance(r, ErrorResponse) for r in declared.values()):
            # `extend_schema(responses=api_errors(...))` alone: the success answer is the view's own.
            declared = {**self._success_response(self._get_serializer()), **declared}
        elif not isinstance(declared, dict):
            declared = self._success_response(declared)

        codes = self.generic_error_codes(next(iter(declared.values()), None))
        responses = {}
        for key, response in declared.items():
            if isinstance(response, ErrorResponse):
                codes[response.status] = [*codes.get(response.status, []), *response.codes]
            else:
                responses[key] = response
        for status in sorted(codes):
            if not any(_status_of(key) == status for key in responses):
                responses[status] = _error_response(status, list(dict.fromkeys(codes[status])))
        return responses

    def _success_response(self, serializer) -> dict:
        if self.method == "DELETE":
            return {204: None}
        if self._is_create_operation():
            return {201: serializer}
        return {200: serializer}

    def _get_response_bodies(self, direction="response"):
        bodies: dict = {}
        for key, serializer in self.responses_with_errors().items():
            if isinstance(key, tuple):
                code, media_types = str(key[0]), key[1:]
            else:
                code, media_types = str(key), None
            body = self._get_response_for_code(serializer, code, media_types, direction)
            if code in bodies and "content" in body:
                bodies[code].setdefault("content", {}).update(body["content"])
            else:
                bodies[code] = body
        return bodies

    def _get_response_headers_for_code(self, status_code, direction="response"):
        headers = super()._get_response_headers_for_code(status_code, direction)
        if str(status_code) in ("429", "503"):
            headers["Retry-After"] = {
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds to wait before trying again.",
                "required": True,
            }
        return headers


def _number(value) -> int | float:
    return int(value) if value == int(value) else float(value)


class DecimalRequestField(OpenApiSerializerFieldExtension):
    """Decimals in request bodies: a decimal string (pattern as enforced) or a JSON number
    (range as enforced). Answers always carry them as strings."""

    target_class = "rest_framework.fields.DecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction != "request":
            return schema
        field = self.target
        string = {"type": "string", "pattern": decimal_pattern(field)}
        number = {"type": "number"}
        if field.min_value is not None:
            number["minimum"] = _number(field.min_value)
        if field.max_value is not None:
            number["maximum"] = _number(field.max_value)
        return {"oneOf": [string, number]}


class TokenRefreshViewSchema(OpenApiViewExtension):
    """simplejwt's refresh view: a bad, expired or blacklisted refresh token is a 401."""

    target_class = "rest_framework_simplejwt.views.TokenRefreshView"

    def view_replacement(self):
        @extend_schema(
            responses=api_errors({400: ["invalid"], 401: ["token_not_valid"]}),
            examples=[OpenApiExample("Refresh", value={"refresh": "eyJhbGciOi..."}, request_only=True)],
        )
        class Refresh(self.target):
            pass

        return Refresh


def postprocess_schema(result, generator, request, public):
    """Schema-wide facts no single view states."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        if name.startswith("Patched") and schema.get("type") == "object":
            # An empty PATCH changes nothing and is refused (400).
            schema["minProperties"] = 1
    return result
