"""`Idempotency-Key` for money-moving POSTs.

A retry with the same key and the same body replays the first response and charges once;
the same key with a different body is refused (422). The record is written in the same
database transaction as the charge itself, so a concurrent duplicate waits on the unique
index and then replays, and a failed attempt (e.g. 402) leaves no record: it may be retried.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.response import Response

from idempotency.models import IdempotencyRecord
from idempotency.schema import IDEMPOTENCY_KEY_RE, MAX_KEY_LENGTH
from zenzefi.errors import Conflict, InvalidInput, Unprocessable

HEADER = "Idempotency-Key"


def request_fingerprint(data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _redact(data, fields: frozenset[str]):
    if isinstance(data, dict):
        return {k: (None if k in fields else _redact(v, fields)) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact(v, fields) for v in data]
    return data


def run_idempotent(
    *, request, scope: str, handler: Callable[[], Response], redact: frozenset[str] = frozenset()
) -> Response:
    """Run `handler` once per (user, scope, Idempotency-Key). Fields named in `redact` (e.g. a
    plaintext token, which is shown once and never stored) are stored, and replayed, as null."""
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidInput(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (no spaces).",
            code="invalid_idempotency_key",
        )
    fingerprint = request_fingerprint(request.data)
    expired_before = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)

    with transaction.atomic():
        record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
            user=request.user, scope=scope, key=key, defaults={"request_hash": fingerprint}
        )
        if not created and record.created_at < expired_before:
            record.delete()
            record = IdempotencyRecord.objects.create(
                user=request.user, scope=scope, key=key, request_hash=fingerprint
            )
            created = True
        if not created:
            if record.request_hash != fingerprint:
                raise Unprocessable(
                    f"This {HEADER} was already used with a different request body.",
                    code="idempotency_key_reused",
                )
            if record.response_status is None:
                raise Conflict(
                    "A request with this Idempotency-Key is still in progress.",
                    code="idempotency_in_progress",
                )
            replay = Response(record.response_body, status=record.response_status)
            replay["Idempotent-Replayed"] = "true"
            return replay

        response = handler()
        if response.status_code >= 400:
            # Failures are not remembered: roll the record back so the client may retry.
            transaction.set_rollback(True)
            return response
        record.response_status = response.status_code
        record.response_body = _redact(response.data, redact)
        record.save(update_fields=["response_status", "response_body"])
        return response
