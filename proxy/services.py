"""Proxy session writes: start (and take over), flush the counters, close idle sessions, and the
token's lazy activation and device-conflict audit as the proxy calls them.

The proxy calls these through `sync_to_async` only when a session starts or something rare
happens; in steady state the hot path touches the key-value store only (see `proxy.state`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from proxy.metrics import active_proxy_sessions
from proxy.models import ProxySession
from proxy.state import get_state
from tokens.models import AccessToken
from tokens.services import token_activate


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _apply_counters(session: ProxySession, counters: dict | None) -> list[str]:
    """Copy the kv counters (absolute totals) into the row; the fields that changed."""
    if not counters:
        return []
    changed = []
    for field, name in (("request_count", "n"), ("bytes_in", "bi"), ("bytes_out", "bo")):
        value = int(counters.get(name, 0))
        if value > getattr(session, field):
            setattr(session, field, value)
            changed.append(field)
    if counters.get("ls"):
        last_seen = _dt(float(counters["ls"]))
        if last_seen > session.last_seen:
            session.last_seen = last_seen
            changed.append("last_seen")
    return changed


def _end(session: ProxySession, now: datetime) -> None:
    """End a session with its final counters; it ended when it went idle (last request + idle
    time) or now, whichever came first."""
    state = get_state()
    _apply_counters(session, state.counters(session.key))
    idle = timedelta(minutes=settings.SESSION_IDLE_MINUTES)
    session.ended_at = max(session.last_seen, min(now, session.last_seen + idle))
    session.save(update_fields=["request_count", "bytes_in", "bytes_out", "last_seen", "ended_at"])
    transaction.on_commit(lambda key=session.key: state.drop_counters(key))


def update_active_gauge() -> int:
    count = ProxySession.objects.filter(ended_at__isnull=True).count()
    active_proxy_sessions.set(count)
    return count


@transaction.atomic
def session_start(
    *,
    token_id: int,
    user_id: int,
    device_id: str,
    key: str,
    ip: str | None = None,
    user_agent: str = "",
    now: datetime | None = None,
) -> ProxySession:
    """A device starts using a token: end the token's open sessions (idle ones, or a takeover) with
    their final counters, and open a new one."""
    now = now or timezone.now()
    for old in ProxySession.objects.select_for_update().filter(token_id=token_id, ended_at__isnull=True):
        _end(old, now)
    session = ProxySession.objects.create(
        key=key,
        token_id=token_id,
        user_id=user_id,
        device_id=device_id,
        ip=ip or None,
        user_agent=(user_agent or "")[:512],
        started_at=now,
        last_seen=now,
    )
    transaction.on_commit(update_active_gauge)
    return session


JOB_CHUNK_SIZE = 1000
COUNTER_FIELDS = ["request_count", "bytes_in", "bytes_out", "last_seen"]


def _write_sessions(sessions: list[ProxySession], fields: list[str]) -> None:
    """Write `fields` of many sessions in one statement. PostgreSQL: `UPDATE … FROM (VALUES …)`
    (Django's bulk_update builds one CASE per field with a branch per row: quadratic work for
    the server on a chunk of 1000); elsewhere bulk_update."""
    if not sessions:
        return
    if connection.vendor != "postgresql":
        ProxySession.objects.bulk_update(sessions, fields)
        return
    types = {
        "request_count": "bigint",
        "bytes_in": "bigint",
        "bytes_out": "bigint",
        "last_seen": "timestamptz",
        "ended_at": "timestamptz",
    }
    row = "(%s, " + ", ".join(f"%s::{types[f]}" for f in fields) + ")"
    values = ", ".join([row] * len(sessions))
    # The counters and "last seen" only grow: a slower concurrent writer never lowers them.
    assignments = ", ".join(
        f"{f} = GREATEST(s.{f}, v.{f})" if f in COUNTER_FIELDS else f"{f} = v.{f}" for f in fields
    )
    params = [p for session in sessions for p in (session.pk, *(getattr(session, f) for f in fields))]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE proxy_proxysession AS s SET {assignments} "  # noqa: S608 - field names are ours
            f"FROM (VALUES {values}) AS v(id, {', '.join(fields)}) WHERE s.id = v.id",
            params,
        )


def sessions_flush_counters(*, chunk_size: int = JOB_CHUNK_SIZE) -> int:
    """Write the kv counters of the sessions counted since the last flush into their rows.

    The proxy marks a session in the kv's dirty set in the same pipeline as it counts
    (`proxy.state`); per chunk of up to `chunk_size` marks the job pops them (SPOP: a concurrent
    run takes others; a session counted again meanwhile is marked again), reads their open rows
    (one SELECT by key), their counters (one kv call) and writes the rows that changed (one
    UPDATE, never lowering a counter: the kv holds absolute totals). A run with nothing changed
    reads one empty set. If a chunk fails, its marks are put back. Idempotent."""
    state = get_state()
    updated = 0
    while True:
        sids = state.pop_dirty(chunk_size)
        if not sids:
            break
        try:
            sessions = list(
                ProxySession.objects.filter(key__in=sids, ended_at__isnull=True)
                .only("pk", "key", *COUNTER_FIELDS)
                .order_by("pk")
            )
            changed = [
                session
                for session, counters in zip(
                    sessions, state.counters_many([s.key for s in sessions]), strict=True
                )
                if _apply_counters(session, counters)
            ]
            if changed:
                _write_sessions(changed, COUNTER_FIELDS)
        except BaseException:
            state.mark_dirty(sids)
            raise
        updated += len(changed)
        if len(sids) < chunk_size:
            break
    update_active_gauge()
    return updated


def sessions_close_idle(*, now: datetime | None = None, chunk_size: int = JOB_CHUNK_SIZE) -> list[int]:
    """End open sessions without a request for SESSION_IDLE_MINUTES (ended_at = last request +
    the idle time). Idempotent: an ended session is never touched again. Candidates are the open
    sessions whose stored `last_seen` is that old (the kv may know a later request: read per chunk
    in one pipeline); each chunk is locked with FOR UPDATE SKIP LOCKED (a concurrent run or a
    session start takes other rows) and ended with one bulk UPDATE; their kv counters are dropped
    after commit in one call."""
    now = now or timezone.now()
    idle = timedelta(minutes=settings.SESSION_IDLE_MINUTES)
    state = get_state()
    closed: list[int] = []
    last = 0
    while True:
        with transaction.atomic():
            qs = ProxySession.objects.filter(ended_at__isnull=True, last_seen__lte=now - idle, pk__gt=last)
            if connection.features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True)
            chunk = list(qs.order_by("pk")[:chunk_size])
            ended = []
            for session, counters in zip(chunk, state.counters_many([s.key for s in chunk]), strict=True):
                _apply_counters(session, counters)
                if session.last_seen + idle > now:
                    continue
                session.ended_at = max(session.last_seen, min(now, session.last_seen + idle))
                ended.append(session)
            if ended:
                _write_sessions(ended, [*COUNTER_FIELDS, "ended_at"])
                keys = [s.key for s in ended]
                transaction.on_commit(lambda k=keys: state.drop_counters_many(k))
        closed.extend(s.pk for s in ended)
        if len(chunk) < chunk_size:
            break
        last = chunk[-1].pk
    update_active_gauge()
    return closed


def token_activate_for_proxy(
    *, token_id: int, ip: str | None = None, user_agent: str = ""
) -> datetime | None:
    """Lazy activation at the first successful proxied request (idempotent: once per token)."""
    token = AccessToken.objects.select_related("user").filter(pk=token_id).first()
    if token is None:
        return None
    token = token_activate(token=token, ip=ip, user_agent=user_agent)
    return token.activated_at


def device_conflict_record(
    *,
    token_id: int,
    user_id: int,
    device_id: str,
    active_device: str,
    ip: str | None = None,
    user_agent: str = "",
) -> None:
    audit_record(
        action="proxy.device_conflict",
        actor=user_id,
        resource_type="token",
        resource_id=token_id,
        details={"device_id": device_id, "active_device_id": active_device},
        ip=ip,
        user_agent=user_agent,
        suspicious=True,
    )


def audit_rate_limit(
    *, token_id: int, user_id: int, limit: int, ip: str | None = None, user_agent: str = ""
) -> None:
    audit_record(
        action="rate_limit.hit",
        actor=user_id,
        resource_type="token",
        resource_id=token_id,
        details={"scope": "proxy", "limit": f"{limit}/min"},
        ip=ip,
        user_agent=user_agent,
        suspicious=True,
    )
