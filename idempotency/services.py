"""`Idempotency-Key` for money-moving POSTs.

A retry with the same key and the same body replays the first response and charges once;
the same key with a different body is refused (422). The record is written in the same
database transaction as the charge itself, so a concurrent duplicate waits on the unique
index and then replays, and a failed attempt (e.g. 402) leaves no record: it may be retried.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone
from rest_framework.response import Response

from idempotency.models import IdempotencyRecord
from idempotency.schema import IDEMPOTENCY_KEY_RE, MAX_KEY_LENGTH
from zenzefi.errors import Conflict, InvalidInput, Unprocessable

HEADER = "Idempotency-Key"
T = TypeVar("T")


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


# --- Pages: one-time form nonces -------------------------------------------------------------
#
# A money-moving page renders a signed nonce (user + page action + a random key) into its
# confirm form; the POST that moves money records the key with the purchase, in the same
# transaction, as an `IdempotencyRecord` with scope "page:<action>". A reload, a resubmit, a
# back-and-submit or a double click sends the same nonce again and gets the first outcome's
# reference back (never a plaintext: only ids), so the page can say "already made".

PAGE_SCOPE_PREFIX = "page:"
_NONCE_SALT = "zenzefi.idempotency.page-nonce"


class InvalidPageNonce(InvalidInput):
    code = "invalid_form_nonce"
    default_detail = "This form has expired or was not issued to you. Nothing was charged."


@dataclass(frozen=True)
class PageOutcome(Generic[T]):
    """`result` of the action on the first submission (`replayed` False); on a repeat,
    `replayed` is True, `result` None and `reference` what the first submission recorded."""

    result: T | None
    replayed: bool
    reference: dict
    done_at: datetime


def page_nonce_issue(*, user, action: str, key: str | None = None) -> str:
    """A signed one-time nonce for `user`'s `action` form. `key` fixes it (e.g. a checkout
    id, so every rendering of that checkout carries the same nonce); by default it is random."""
    payload = {"u": user.pk, "a": action, "k": key or secrets.token_urlsafe(18)}
    return signing.dumps(payload, salt=_NONCE_SALT, compress=False)


def page_nonce_key(*, user, action: str, nonce: str | None) -> str:
    """The key inside a nonce issued to `user` for `action`; InvalidPageNonce otherwise
    (missing, forged, another user's or action's, or older than IDEMPOTENCY_KEY_TTL_HOURS)."""
    if not nonce or len(nonce) > 512:
        raise InvalidPageNonce()
    try:
        payload = signing.loads(
            nonce, salt=_NONCE_SALT, max_age=timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
        )
    except signing.BadSignature:  # SignatureExpired is a BadSignature too
        raise InvalidPageNonce() from None
    key = payload.get("k") if isinstance(payload, dict) else None
    if payload.get("u") != user.pk or payload.get("a") != action or not isinstance(key, str) or not key:
        raise InvalidPageNonce()
    return key[:MAX_KEY_LENGTH]


def page_action_once(
    *, user, action: str, nonce: str | None, perform: Callable[[], tuple[T, dict]]
) -> PageOutcome[T]:
    """Run `perform` once per nonce. It returns (result, reference): `reference` is a small
    JSON-able dict of ids (never a plaintext) kept to describe the outcome on a repeat.
    An error raised by `perform` rolls the record back with the charge: the form may be resent.
    Concurrent submissions of one nonce wait on the unique index and then replay."""
    key = page_nonce_key(user=user, action=action, nonce=nonce)
    with transaction.atomic():
        record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
            user=user, scope=PAGE_SCOPE_PREFIX + action, key=key, defaults={"request_hash": ""}
        )
        if not created:
            return PageOutcome(
                result=None, replayed=True, reference=record.response_body or {}, done_at=record.created_at
            )
        result, reference = perform()
        record.response_status = 200
        record.response_body = reference
        record.save(update_fields=["response_status", "response_body"])
        return PageOutcome(result=result, replayed=False, reference=reference, done_at=record.created_at)
