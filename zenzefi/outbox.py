"""The outbox engine: one claim/lease/backoff state machine for every row that must go out once
(customer webhook deliveries, notification emails). It imports no app: each app describes its
table with an `Outbox` (model, status names, limits, the `send` function and the trigger task)
and calls `deliver`, `deliver_many` and `sweep`.

The state machine (the status names are the app's own):

    pending ──claim──▶ sending ──ok──▶ succeeded
    retrying ─claim─▶ sending ──error, attempts < max──▶ retrying (next_attempt_at = backoff)
                      sending ──error, attempts = max, or permanent──▶ failed (dead)
                      sending ──lease expired (worker killed)──▶ claimable again

- **Claim** (`_claim`): one `UPDATE … SET status = sending, claimed_until = now + lease,
  claimed_by = <token>, attempts = attempts + 1 WHERE pk IN (SELECT pk … LIMIT n FOR UPDATE SKIP
  LOCKED) RETURNING pk`: rows another worker is claiming are skipped, never waited for, and
  the lease and the attempt are taken in the same statement. An unexpired lease is never taken
  (a slow send is not sent twice at once), except by the same trigger message redelivered by
  the broker after its worker died (`claim_key`); an expired lease is (the worker was killed).
- **Fencing**: every later write (renewal before a send, the outcome) is conditional on
  `claimed_by = token AND status = sending`, so a worker whose lease was taken over writes
  nothing.
- **Backoff**: `backoff_seconds` is the only formula (base × 2^(n−1), capped, + 0–20 % jitter).
- **Celery** is only a trigger: "process this row now" (`deliver`/`deliver_many`, queued after
  commit and, after a failure, with the backoff as countdown) and "sweep" (`sweep`, on the beat
  schedule: the safety net for a lost trigger). No Celery retry: attempts are counted on the row.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone

logger = logging.getLogger(__name__)


def backoff_seconds(attempt: int, *, base: int, cap: int) -> int:
    """Wait after failed attempt number `attempt` (1-based): base × 2^(attempt−1), at most `cap`,
    plus up to 20 % random jitter so failing receivers are not hit in lockstep. The one backoff
    formula of every outbox (webhooks: SPEC §11 "exponential backoff"; emails the same)."""
    delay = min(base * 2 ** max(0, attempt - 1), cap)
    return int(delay + secrets.randbelow(max(1, delay // 5) + 1))


@dataclass(frozen=True)
class Result:
    """What the app's `send` function reports for one claimed row.

    ok: sent. Otherwise `error` says why; `final_status` (e.g. "failed", "skipped") ends the row
    at once (a permanent error: retrying cannot help). `count_attempt=False` gives the claimed
    attempt back (nothing was tried, e.g. the user switched the email off). `fields` are written
    with the outcome; `record(status, number, retry_in, finished)` runs in the same transaction,
    only if this worker still held the lease.
    """

    ok: bool
    error: str = ""
    final_status: str | None = None
    count_attempt: bool = True
    fields: dict[str, Any] = field(default_factory=dict)
    record: Callable[..., None] | None = None


@dataclass(frozen=True)
class Finished:
    status: str
    retry_in: int | None = None  # seconds until the next attempt, when one is due


@dataclass(frozen=True)
class Outbox:
    """An app's outbox table. The model has `attempts`, `next_attempt_at`, `claimed_until`,
    `claimed_by`, `last_error` and `created_at` fields and a status field named `status_field`.
    Callables are read at each use (settings may change, e.g. in tests)."""

    model: type[models.Model]
    status_field: str
    pending: str
    sending: str
    retrying: str
    succeeded: str
    failed: str
    send: Callable[[Any], Result]
    max_attempts: Callable[[], int]
    backoff_base: Callable[[], int]
    backoff_cap: Callable[[], int]
    lease_seconds: Callable[[], float]
    # (pk, countdown seconds, attempts so far): queue "process this row" for its next attempt.
    trigger: Callable[[int, int, int], None]
    done_at_field: str = ""
    select_related: tuple[str, ...] = ()
    name: str = "outbox"

    @property
    def objects(self):
        return self.model._default_manager

    def backoff(self, attempt: int) -> int:
        return backoff_seconds(attempt, base=self.backoff_base(), cap=self.backoff_cap())


# --- Claim -----------------------------------------------------------------------------------


def _claim(box: Outbox, where: Q, *, now: datetime, token: str, limit: int) -> list[int]:
    """Claim up to `limit` rows matching `where` in one statement; returns their pks."""
    qn = connection.ops.quote_name
    meta = box.model._meta
    # No ORDER BY: a queue needs none, and the planner is free to use the status indexes.
    candidates = box.objects.filter(where).order_by().values("pk")[:limit]
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        sub_sql, sub_params = candidates.query.sql_with_params()
        column = {
            name: qn(meta.get_field(name).column) for name in ("attempts", "claimed_until", "claimed_by")
        }
        status = qn(meta.get_field(box.status_field).column)
        pk = qn(meta.pk.column)
        lease = now + timedelta(seconds=box.lease_seconds())
        # Identifiers come from the model's meta (quoted); every value is a parameter.
        sql = (
            f"UPDATE {qn(meta.db_table)} SET {status} = %s, {column['claimed_until']} = %s, "  # noqa: S608
            f"{column['claimed_by']} = %s, {column['attempts']} = {column['attempts']} + 1 "
            f"WHERE {pk} IN ({sub_sql}) RETURNING {pk}"
        )
        params = (box.sending, connection.ops.adapt_datetimefield_value(lease), token, *sub_params)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return sorted(row[0] for row in cursor.fetchall())


def _claimable_now(box: Outbox, claim_key: str, attempts: int | None = None) -> Q:
    """What a trigger ("process this row now") may claim: a row waiting (pending or retrying;
    the trigger was queued for its time), or sending under an expired lease, or under its own
    `claim_key` (the same broker message redelivered after its worker died). A retry's trigger
    names the attempts made when it was queued: if the row has moved on since (the sweeper made
    that attempt), the trigger is stale and claims nothing, so the backoff schedule holds."""
    now = timezone.now()
    q = Q(**{f"{box.status_field}__in": [box.pending, box.retrying]}) | Q(
        **{box.status_field: box.sending, "claimed_until__lt": now}
    )
    if attempts is not None:
        q &= Q(attempts=attempts)
    if claim_key:
        q |= Q(**{box.status_field: box.sending, "claimed_by": claim_key})
    return q & Q(attempts__lt=box.max_attempts())


def _due(box: Outbox, now: datetime) -> Q:
    """What the sweeper claims: pending rows never queued (older than OUTBOX_GRACE_SECONDS: their
    trigger may still be on its way), retries whose time has come, expired leases."""
    never_queued = now - timedelta(seconds=settings.OUTBOX_GRACE_SECONDS)
    s = box.status_field
    return (
        Q(**{s: box.pending, "created_at__lt": never_queued})
        | Q(**{s: box.retrying, "next_attempt_at__lte": now})
        | Q(**{s: box.sending, "claimed_until__lt": now})
    ) & Q(attempts__lt=box.max_attempts())


# --- Process ---------------------------------------------------------------------------------


def _process(box: Outbox, pk: int, token: str, *, renew: bool = True) -> Finished:
    """Send one claimed row (if this worker still holds it) and record the outcome. `renew`: a
    row claimed a while ago (later in a chunk) first renews its lease, which also checks that it
    is still ours; a row claimed just now needs no renewal."""
    if renew:
        fence = {"pk": pk, "claimed_by": token, box.status_field: box.sending}
        renewed = box.objects.filter(**fence).update(
            claimed_until=timezone.now() + timedelta(seconds=box.lease_seconds())
        )
        if not renewed:  # the lease expired and another worker took the row over
            return Finished(status=box.sending)
    row = box.objects.select_related(*box.select_related).get(pk=pk)
    try:
        result = box.send(row)
    except Exception as exc:  # an unexpected error is one failed attempt, not a lost row
        logger.exception("%s %s: send raised", box.name, pk)
        result = Result(ok=False, error=f"{type(exc).__name__}: {exc}")
    return _finish(box, row, token, result)


def _finish(box: Outbox, row, token: str, result: Result) -> Finished:
    number = row.attempts if result.count_attempt else row.attempts - 1
    retry_in = None
    if result.ok:
        status = box.succeeded
    elif result.final_status:
        status = result.final_status
    elif number < box.max_attempts():
        status, retry_in = box.retrying, box.backoff(number)
    else:
        status = box.failed
    finished = timezone.now()
    values: dict[str, Any] = {
        box.status_field: status,
        "last_error": "" if result.ok else result.error[:500],
        "next_attempt_at": finished + timedelta(seconds=retry_in) if retry_in is not None else None,
        "claimed_until": None,
        "claimed_by": "",
        **result.fields,
    }
    if not result.count_attempt:
        values["attempts"] = F("attempts") - 1
    if box.done_at_field:
        values[box.done_at_field] = finished if result.ok else None
    with transaction.atomic():
        written = box.objects.filter(pk=row.pk, claimed_by=token, **{box.status_field: box.sending}).update(
            **values
        )
        if not written:  # lost the lease while sending: the new holder records its own outcome
            logger.warning("%s %s: lease lost before the outcome was recorded", box.name, row.pk)
            return Finished(status=box.sending)
        if result.record is not None:
            result.record(status=status, number=number, retry_in=retry_in, finished=finished)
        if retry_in is not None:
            transaction.on_commit(lambda: _trigger(box, row.pk, retry_in, number), robust=True)
    if status == box.failed:
        logger.warning("%s %s: failed after %s attempts (%s)", box.name, row.pk, number, result.error)
    return Finished(status=status, retry_in=retry_in)


def _trigger(box: Outbox, pk: int, countdown: int, attempts: int) -> None:
    """Queue the next attempt's trigger; if the broker is down the sweeper finds the row when
    `next_attempt_at` has come."""
    try:
        box.trigger(pk, countdown, attempts)
    except Exception:
        logger.warning(
            "%s %s: could not queue the next attempt; the sweeper will", box.name, pk, exc_info=True
        )


def _status(box: Outbox, pk: int) -> str:
    status = box.objects.filter(pk=pk).values_list(box.status_field, flat=True).first()
    return status or "missing"


def deliver(box: Outbox, pk: int, *, claim_key: str = "", attempts: int | None = None) -> Finished:
    """Process one row now (the trigger task): claim it (unless another worker holds an
    unexpired lease, it is final, or - `attempts` given - the trigger is stale), send, record.
    Returns the row's status afterwards."""
    token = claim_key or f"run:{uuid.uuid4().hex}"
    where = Q(pk=pk) & _claimable_now(box, claim_key, attempts)
    if not _claim(box, where, now=timezone.now(), token=token, limit=1):
        return Finished(status=_status(box, pk))
    return _process(box, pk, token, renew=False)


def deliver_many(box: Outbox, pks: list[int], *, claim_key: str = "") -> list[Finished]:
    """Process many rows now (a job's batch): one claim statement, then each row in turn (its
    lease renewed just before its send)."""
    if not pks:
        return []
    token = claim_key or f"run:{uuid.uuid4().hex}"
    claimed = _claim(
        box, Q(pk__in=pks) & _claimable_now(box, claim_key), now=timezone.now(), token=token, limit=len(pks)
    )
    return [_process(box, pk, token, renew=i > 0) for i, pk in enumerate(claimed)]


def sweep(box: Outbox, *, now: datetime | None = None, chunk_size: int = 50, limit: int = 500) -> list[int]:
    """The safety net (a beat job): rows whose trigger was lost are claimed in chunks (SKIP
    LOCKED: concurrent sweepers and triggers take disjoint rows) and processed here. A row whose
    lease expired on its last attempt is dead (failed). Returns the pks processed."""
    now = now or timezone.now()
    s = box.status_field
    dead = box.objects.filter(
        **{s: box.sending, "claimed_until__lt": now, "attempts__gte": box.max_attempts()}
    ).update(
        **{s: box.failed},
        claimed_until=None,
        claimed_by="",
        next_attempt_at=None,
        last_error="The lease of the last attempt expired (the worker stopped).",
    )
    if dead:
        logger.warning("%s: %s rows dead after their last attempt's lease expired", box.name, dead)
    processed: list[int] = []
    while len(processed) < limit:
        token = f"sweep:{uuid.uuid4().hex}"
        claimed = _claim(
            box, _due(box, now), now=now, token=token, limit=min(chunk_size, limit - len(processed))
        )
        if not claimed:
            break
        for i, pk in enumerate(claimed):
            _process(box, pk, token, renew=i > 0)
        processed.extend(claimed)
    return processed
