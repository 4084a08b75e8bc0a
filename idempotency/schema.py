"""The OpenAPI description of the `Idempotency-Key` header, for every money-moving POST."""

from drf_spectacular.utils import OpenApiParameter

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe key (1–255 printable characters): the same key and body replay the first "
    "answer and charge once; the same key with another body is a 422.",
)
