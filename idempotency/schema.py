"""The OpenAPI description of the `Idempotency-Key` header, for every money-moving POST."""

import re

from drf_spectacular.utils import OpenApiExample, OpenApiParameter

MAX_KEY_LENGTH = 255
# The alphabet: visible ASCII (no spaces, no control or non-ASCII characters), 1 to 255 of them.
# A UUID, a ULID or any "order-42-attempt" string fits.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"
IDEMPOTENCY_KEY_RE = re.compile(r"[!-~]{1,255}")

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": IDEMPOTENCY_KEY_PATTERN},
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe key: 1–255 visible ASCII characters (`!` to `~`, no spaces). The same key "
    "and body replay the first answer (with `Idempotent-Replayed: true`) and charge once; the same key "
    "with another body is a 422 `idempotency_key_reused`; anything else in the header is a 400 "
    "`invalid_idempotency_key`.",
    examples=[OpenApiExample("A UUID", value="5f0c7a52-8d4e-4d1b-9a51-3a4f7f0e2b11")],
)
