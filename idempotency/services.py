"""Idempotency: run a money-moving action once per (user, scope, key) and replay its outcome.

The core is a plain service (no HTTP): `idempotent_atomic` and `idempotent_claimed` take a user, a
scope, a key, a fingerprint of the request and a handler returning `(status, body)`, and return an
`Outcome` (the status and body, and whether they were replayed). Two thin wrappers sit on it: the
DRF one (`run_idempotent`, the `Idempotency-Key` header of the API's money POSTs) and the pages'
one-time form nonces (`page_action_once`).

- A retry with the same key and the same fingerprint replays the first answer and charges once;
  the same key with another fingerprint is refused (422 `idempotency_key_reused`).
- A failed attempt (status >= 400 or an exception) is not remembered: it may be retried.
- `idempotent_atomic` (purchases): the record is written in the same database transaction as the
  charge, so a concurrent duplicate waits on the unique index and then replays.
- `idempotent_claimed` (a handler that calls a remote service, e.g. a payment provider): the record
  is claimed "in progress" in a short committed transaction, the handler runs outside it (no row
  lock held across the remote call), then the outcome is stored. A concurrent duplicate gets 409
  `idempotency_in_progress`. The handler may `note` what it committed (e.g. the pending payment's
  id); a retry after a failure, or after a crash once the claim's lease ran out, takes the claim
  over with that note and resumes instead of starting again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

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

# How long a claimed ("in progress") record is held by the call that claimed it. Longer than any
# handler may run (a YooKassa create: YOOKASSA_TIMEOUT per phase); after it, the holder is taken
# to have crashed and a retry takes the claim over (and resumes from its note).
CLAIM_LEASE = timedelta(minutes=2)


def request_fingerprint(data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _redact(data, fields: frozenset[str]):
    if isinstance(data, dict):
        return {k: (None if k in fields else _redact(v, fields)) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact(v, fields) for v in data]
    return data


@dataclass(frozen=True)
class Outcome:
    """What an idempotent call answered: `status` and `body` of the first successful run;
    `replayed` True when this call only replayed them (the handler did not run)."""

    status: int
    body: Any
    replayed: bool
    done_at: datetime | None = None


class Claim:
    """The in-progress record a call of `idempotent_claimed` holds while its handler runs."""

    def __init__(self, record_id: int, reference: dict | None):
        self.record_id = record_id
        # What an earlier attempt with this key noted before it failed or crashed (None: fresh).
        self.reference = reference

    def note(self, reference: dict) -> None:
        """Keep `reference` (small, JSON-able ids) so that a retry resumes from it. Call it inside
        the transaction that commits what it refers to, so both commit or neither."""
        IdempotencyRecord.objects.filter(pk=self.record_id, response_status__isnull=True).update(
            response_body=reference
        )
        self.reference = reference


Handler = Callable[[], tuple[int, Any]]
ClaimedHandler = Callable[[Claim | None], tuple[int, Any]]


def _claim(*, user, scope: str, key: str, fingerprint: str, lease: timedelta | None):
    """Inside a transaction: (the record, now held by this call, None) or (None, the outcome to
    replay). 422 for another fingerprint, 409 while another call holds the record."""
    now = timezone.now()
    claimed_until = now + lease if lease is not None else None
    record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
        user=user,
        scope=scope,
        key=key,
        defaults={"request_hash": fingerprint, "claimed_until": claimed_until},
    )
    if created:
        return record, None
    if record.created_at < now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
        record.delete()
        record = IdempotencyRecord.objects.create(
            user=user, scope=scope, key=key, request_hash=fingerprint, claimed_until=claimed_until
        )
        return record, None
    if record.request_hash != fingerprint:
        raise Unprocessable(
            f"This {HEADER} was already used with a different request body.",
            code="idempotency_key_reused",
        )
    if record.response_status is not None:
        return None, Outcome(
            status=record.response_status, body=record.response_body, replayed=True, done_at=record.created_at
        )
    if lease is None or (record.claimed_until is not None and record.claimed_until > now):
        raise Conflict(
            "A request with this Idempotency-Key is still in progress.", code="idempotency_in_progress"
        )
    # Released after a failure, or abandoned by a crash (its lease ran out): take it over.
    record.claimed_until = claimed_until
    record.save(update_fields=["claimed_until"])
    return record, None


def idempotent_atomic(
    *,
    user,
    scope: str,
    key: str | None,
    fingerprint: str,
    handler: Handler,
    redact: frozenset[str] = frozenset(),
) -> Outcome:
    """Run `handler` once per (user, scope, key), in one transaction with its record. Fields
    named in `redact` (e.g. a plaintext token, shown once and never stored) are stored, and
    replayed, as null. Without a key the handler just runs."""
    if key is None:
        status, body = handler()
        return Outcome(status=status, body=body, replayed=False)
    with transaction.atomic():
        record, replay = _claim(user=user, scope=scope, key=key, fingerprint=fingerprint, lease=None)
        if replay is not None:
            return replay
        status, body = handler()
        if status >= 400:
            # Failures are not remembered: roll the record back with the attempt.
            transaction.set_rollback(True)
            return Outcome(status=status, body=body, replayed=False)
        record.response_status = status
        record.response_body = _redact(body, redact)
        record.save(update_fields=["response_status", "response_body"])
        return Outcome(status=status, body=body, replayed=False, done_at=record.created_at)


def idempotent_claimed(
    *,
    user,
    scope: str,
    key: str | None,
    fingerprint: str,
    handler: ClaimedHandler,
    redact: frozenset[str] = frozenset(),
    lease: timedelta = CLAIM_LEASE,
) -> Outcome:
    """Run `handler(claim)` once per (user, scope, key) with no transaction or row lock held
    around it: the record is claimed and committed first, the outcome stored after. A failure
    releases the claim: it is deleted (a fresh retry) unless the handler noted progress, which a
    retry then resumes. Without a key the handler runs with `claim=None`."""
    if key is None:
        status, body = handler(None)
        return Outcome(status=status, body=body, replayed=False)
    with transaction.atomic():
        record, replay = _claim(user=user, scope=scope, key=key, fingerprint=fingerprint, lease=lease)
    if replay is not None:
        return replay
    claim = Claim(record.pk, record.response_body if isinstance(record.response_body, dict) else None)
    try:
        status, body = handler(claim)
    except Exception:
        _release(claim)
        raise
    if status >= 400:
        _release(claim)
        return Outcome(status=status, body=body, replayed=False)
    IdempotencyRecord.objects.filter(pk=claim.record_id, response_status__isnull=True).update(
        response_status=status, response_body=_redact(body, redact), claimed_until=None
    )
    return Outcome(status=status, body=body, replayed=False, done_at=record.created_at)


def _release(claim: Claim) -> None:
    pending = IdempotencyRecord.objects.filter(pk=claim.record_id, response_status__isnull=True)
    if claim.reference:
        pending.update(claimed_until=None)  # a retry takes it over and resumes from the note
    else:
        pending.delete()  # nothing to resume: not remembered, a retry starts afresh


def idempotency_purge(*, now: datetime | None = None) -> int:
    """Delete records older than IDEMPOTENCY_KEY_TTL_HOURS (they replay nothing any more: an
    expired key starts afresh). Returns how many were deleted."""
    before = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=before).delete()
    return deleted


# --- DRF: the Idempotency-Key header ---------------------------------------------------------


def run_idempotent(
    *,
    request,
    scope: str,
    handler: Callable[..., Response],
    redact: frozenset[str] = frozenset(),
    outside_transaction: bool = False,
) -> Response:
    """The API's `Idempotency-Key` over the core: `handler()` (or `handler(claim)` with
    `outside_transaction`, see `idempotent_claimed`) returns the first Response; a replay answers
    the stored status and body with `Idempotent-Replayed: true`."""
    key = request.headers.get(HEADER)
    if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidInput(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (no spaces).",
            code="invalid_idempotency_key",
        )
    first: list[Response] = []

    def run(*claim) -> tuple[int, Any]:
        response = handler(*claim)
        first.append(response)
        return response.status_code, response.data

    fingerprint = request_fingerprint(request.data) if key is not None else ""
    common = {"user": request.user, "scope": scope, "key": key, "fingerprint": fingerprint, "redact": redact}
    outcome = (
        idempotent_claimed(handler=run, **common)
        if outside_transaction
        else idempotent_atomic(handler=run, **common)
    )
    if not outcome.replayed:
        return first[0]
    replay = Response(outcome.body, status=outcome.status)
    replay["Idempotent-Replayed"] = "true"
    return replay


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
    *,
    user,
    action: str,
    nonce: str | None,
    perform: Callable[..., tuple[T, dict]],
    outside_transaction: bool = False,
) -> PageOutcome[T]:
    """Run `perform` once per nonce (the core with scope "page:<action>"). It returns (result,
    reference): `reference` is a small JSON-able dict of ids (never a plaintext) kept to describe
    the outcome on a repeat. An error raised by `perform` rolls the record back with the charge:
    the form may be resent. Concurrent submissions of one nonce wait on the unique index and then
    replay. With `outside_transaction`, `perform(claim)` runs outside any transaction (see
    `idempotent_claimed`): a concurrent submission gets 409 `idempotency_in_progress`."""
    key = page_nonce_key(user=user, action=action, nonce=nonce)
    results: list[T] = []

    def run(*claim) -> tuple[int, dict]:
        result, reference = perform(*claim)
        results.append(result)
        return 200, reference

    common = {"user": user, "scope": PAGE_SCOPE_PREFIX + action, "key": key, "fingerprint": ""}
    outcome = (
        idempotent_claimed(handler=run, **common)
        if outside_transaction
        else idempotent_atomic(handler=run, **common)
    )
    if outcome.replayed:
        return PageOutcome(result=None, replayed=True, reference=outcome.body or {}, done_at=outcome.done_at)
    return PageOutcome(result=results[0], replayed=False, reference=outcome.body, done_at=outcome.done_at)
