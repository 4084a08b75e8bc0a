"""Notifications: templated emails in the user's language (and the matching customer webhook),
decided once and sent after commit by a Celery task.

Templates live per language: `templates/emails/<lang>/<kind>_subject.txt`, `<kind>.txt` and
`<kind>.html`, chosen by `user.language` (falling back to LANGUAGE_CODE). Any later feature
(referral bonus, payment received, auto-renewal) sends through `notification_create` with its
own `kind`, a JSON-safe context and, if it has one, a webhook event. A user can switch each
kind's email off (EMAIL_PREFERENCES → the `notify_*` fields of User): the notification is still
recorded and its webhook still fires, only the email is skipped.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime

from currency.models import Transaction
from notifications.models import EmailStatus, Notification, NotificationKind
from tokens.models import AccessToken
from zenzefi import outbox

logger = logging.getLogger(__name__)
User = get_user_model()


# --- Rendering and sending ------------------------------------------------------------------


def email_language(language: str | None) -> str:
    codes = {code for code, _ in settings.LANGUAGES}
    return language if language in codes else settings.LANGUAGE_CODE


def _template_context(context: dict[str, Any]) -> dict[str, Any]:
    """JSON context → template context: `*_at` ISO strings back to aware datetimes."""
    result = dict(context)
    for key, value in context.items():
        if key.endswith("_at") and isinstance(value, str):
            result[key] = parse_datetime(value) or value
    return result


def email_render(*, template: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of `templates/emails/<language>/<template>*`."""
    language = email_language(language)
    try:
        get_template(f"emails/{language}/{template}.txt")
    except TemplateDoesNotExist:
        language = settings.LANGUAGE_CODE
    ctx = {"site_url": settings.SITE_URL.rstrip("/"), **_template_context(context)}
    with translation.override(language):
        subject = render_to_string(f"emails/{language}/{template}_subject.txt", ctx)
        text = render_to_string(f"emails/{language}/{template}.txt", ctx)
        html = render_to_string(f"emails/{language}/{template}.html", ctx)
    subject = " ".join(subject.split())  # one line: headers cannot hold newlines
    return subject, text, html


def email_send(*, to: str, template: str, language: str, context: dict[str, Any]) -> None:
    """Render and send one email now, through Django's email backend (console by default)."""
    subject, text, html = email_render(template=template, language=language, context=context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    message.send()


# --- Notifications ---------------------------------------------------------------------------

# The user's switch (a boolean field on User) that turns each kind's email off; kinds not listed
# are always emailed. A switched-off notification is still recorded (de-duplication rests on those
# rows) and its webhook still fires: only the email is skipped.
EMAIL_PREFERENCES: dict[str, str] = {
    NotificationKind.TOKEN_EXPIRING: "notify_token_expiring",
    NotificationKind.BALANCE_LOW: "notify_low_balance",
    NotificationKind.AUTO_RENEW_DONE: "notify_renewal",
    NotificationKind.AUTO_RENEW_FAILED: "notify_renewal",
    NotificationKind.PAYMENT_RECEIVED: "notify_payment",
}
EMAIL_TURNED_OFF = "Email turned off in the user's notification preferences."


def email_wanted(user, kind: str) -> bool:
    """Whether `user` wants the email of a notification of this `kind`."""
    field = EMAIL_PREFERENCES.get(kind)
    return field is None or bool(getattr(user, field, True))


def _queue_email(notification_id: int) -> None:
    from notifications.tasks import send_notification_email

    send_notification_email.delay(notification_id)


def notification_create(
    *,
    user,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str | None = None,
    webhook_event: str | None = None,
    webhook_data: dict[str, Any] | None = None,
) -> Notification | None:
    """Record a notification and, after commit, queue its email (and emit its webhook event).

    With a `dedupe_key` it happens at most once: a second call with the same key (even a
    concurrent one) returns None and queues nothing. Safe inside or outside a transaction.
    No email is queued (status skipped) for a user without an address or who switched this
    kind's email off; the record and the webhook event happen all the same.
    """
    if kind not in NotificationKind.values:
        raise ValueError(f"Unknown notification kind {kind!r}")
    turned_off = bool(user.email) and not email_wanted(user, kind)
    send_email = bool(user.email) and not turned_off
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user,
                kind=kind,
                dedupe_key=dedupe_key,
                context=context,
                language=email_language(getattr(user, "language", None)),
                email_status=EmailStatus.PENDING if send_email else EmailStatus.SKIPPED,
                last_error=EMAIL_TURNED_OFF if turned_off else "",
            )
    except IntegrityError:
        if dedupe_key and Notification.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        raise
    if send_email:
        transaction.on_commit(lambda: _queue_email(notification.pk), robust=True)
    if webhook_event:
        from webhooks.services import webhook_emit

        # Outbox: the delivery rows join the caller's transaction; only the enqueue waits.
        webhook_emit(
            user_id=user.pk, event=webhook_event, data=webhook_data if webhook_data is not None else context
        )
    return notification


# --- Delivery (the outbox engine, `zenzefi.outbox`) ------------------------------------------

# Longer than one SMTP conversation can take: a "sending" row older than this lost its worker.
EMAIL_LEASE_SECONDS = 300


def _send(notification: Notification) -> outbox.Result:
    """Send a claimed notification's email (the engine's `send`). A user who switched this kind
    of email off since it was decided gets nothing (skipped, no attempt counted); a kind without
    templates fails at once (retrying cannot help); any other error is retried with backoff."""
    if not email_wanted(notification.user, notification.kind):  # switched off since it was decided
        return outbox.Result(
            ok=False, error=EMAIL_TURNED_OFF, final_status=EmailStatus.SKIPPED, count_attempt=False
        )
    try:
        email_send(
            to=notification.user.email,
            template=notification.kind,
            language=notification.language or notification.user.language,
            context={"username": notification.user.username, **notification.context},
        )
    except TemplateDoesNotExist as exc:  # permanent: retrying cannot help
        logger.error(
            "notification %s: no email template for kind %r (%s)", notification.pk, notification.kind, exc
        )
        return outbox.Result(ok=False, error=f"No email template: {exc}", final_status=EmailStatus.FAILED)
    except Exception as exc:
        logger.warning("notification %s: email failed (%s)", notification.pk, exc)
        return outbox.Result(ok=False, error=f"{type(exc).__name__}: {exc}")
    return outbox.Result(ok=True)


def _trigger(notification_id: int, countdown: int, attempts: int) -> None:
    from notifications.tasks import send_notification_email

    send_notification_email.apply_async((notification_id,), {"attempts": attempts}, countdown=countdown)


EMAILS = outbox.Outbox(
    model=Notification,
    status_field="email_status",
    pending=EmailStatus.PENDING,
    sending=EmailStatus.SENDING,
    retrying=EmailStatus.RETRYING,
    succeeded=EmailStatus.SENT,
    failed=EmailStatus.FAILED,
    send=_send,
    max_attempts=lambda: settings.EMAIL_MAX_ATTEMPTS,
    backoff_base=lambda: settings.EMAIL_RETRY_BASE_SECONDS,
    backoff_cap=lambda: settings.EMAIL_RETRY_MAX_SECONDS,
    lease_seconds=lambda: EMAIL_LEASE_SECONDS,
    trigger=_trigger,
    done_at_field="sent_at",
    select_related=("user",),
    name="notification email",
)


def notification_email_deliver(
    *, notification_id: int, claim_key: str = "", attempts: int | None = None
) -> str:
    """Send a notification's email once, now (the trigger task). Returns the resulting status.

    The row is claimed by the outbox engine (lease + attempt in one statement), so two workers
    running the same task send one email and a slow send is never sent twice at once. A send
    error schedules the next attempt on the row (status retrying, `next_attempt_at`, the one
    backoff formula) and queues its trigger; after EMAIL_MAX_ATTEMPTS the email is failed."""
    return outbox.deliver(EMAILS, notification_id, claim_key=claim_key, attempts=attempts).status


def notification_emails_deliver(*, notification_ids: list[int], claim_key: str = "") -> int:
    """`notification_email_deliver` for a job's batch (one claim statement). Returns how many
    were sent."""
    done = outbox.deliver_many(EMAILS, notification_ids, claim_key=claim_key)
    return sum(1 for f in done if f.status == EmailStatus.SENT)


# --- The two notification jobs ---------------------------------------------------------------


def token_expiring_dedupe_key(token) -> str:
    """Once per token and expiry: a token renewed (new `expires_at`) is announced again."""
    return f"{NotificationKind.TOKEN_EXPIRING}:token:{token.pk}:{int(token.expires_at.timestamp())}"


JOB_CHUNK_SIZE = 1000


def notifications_create_many(items: list[dict[str, Any]]) -> list[Notification]:
    """`notification_create` for many notifications at once (the jobs): one bulk insert, emails
    and webhook events queued after commit in batches. Each item: `user` (with email, language
    and the notify_* switches loaded), `kind`, `context`, optional `dedupe_key`, `webhook_event`,
    `webhook_data` (a dict, or a callable that builds it only if some endpoint wants it). The
    caller guarantees the keys are new (it holds the rows it decides on);
    should a concurrent insert win anyway, the chunk falls back to one insert per item, which
    skips the duplicate."""
    rows = []
    for item in items:
        user, kind = item["user"], item["kind"]
        if kind not in NotificationKind.values:
            raise ValueError(f"Unknown notification kind {kind!r}")
        turned_off = bool(user.email) and not email_wanted(user, kind)
        send_email = bool(user.email) and not turned_off
        rows.append(
            Notification(
                user=user,
                kind=kind,
                dedupe_key=item.get("dedupe_key"),
                context=item["context"],
                language=email_language(getattr(user, "language", None)),
                email_status=EmailStatus.PENDING if send_email else EmailStatus.SKIPPED,
                last_error=EMAIL_TURNED_OFF if turned_off else "",
            )
        )
    if not rows:
        return []
    try:
        with transaction.atomic():
            created = Notification.objects.bulk_create(rows)
    except IntegrityError:
        created = [
            n
            for n in (
                notification_create(
                    user=i["user"],
                    kind=i["kind"],
                    context=i["context"],
                    dedupe_key=i.get("dedupe_key"),
                    webhook_event=i.get("webhook_event"),
                    webhook_data=_payload(i.get("webhook_data")),
                )
                for i in items
            )
            if n is not None
        ]
        return created
    email_ids = [n.pk for n in created if n.email_status == EmailStatus.PENDING]
    if email_ids:
        transaction.on_commit(lambda: _queue_emails(email_ids), robust=True)
    by_event: dict[str, list[tuple[int, int, dict]]] = {}
    for n, item in zip(created, items, strict=True):
        if item.get("webhook_event"):
            data = item.get("webhook_data")
            by_event.setdefault(item["webhook_event"], []).append(
                (n.pk, n.user_id, data if data is not None else item["context"])
            )
    for event, entries in by_event.items():  # outbox rows in this transaction
        _emit_many(event, entries)
    return created


def _emit_many(event: str, entries: list[tuple[int, int, dict]]) -> None:
    from webhooks.services import webhook_emit_many

    payloads = {pk: data for pk, _, data in entries}
    webhook_emit_many(
        items=[(pk, user_id) for pk, user_id, _ in entries],
        event=event,
        data=lambda ids: {i: _payload(payloads[i]) for i in ids},
    )


def _payload(data):
    """A webhook payload given as a callable is built only when an endpoint wants the event."""
    return data() if callable(data) else data


EMAIL_BATCH_SIZE = 100


def _queue_emails(notification_ids: list[int]) -> None:
    """Queue many emails: one message per EMAIL_BATCH_SIZE (`send_notification_emails`)."""
    from notifications.tasks import send_notification_emails

    with send_notification_emails.app.producer_or_acquire() as producer:
        for i in range(0, len(notification_ids), EMAIL_BATCH_SIZE):
            send_notification_emails.apply_async(
                (notification_ids[i : i + EMAIL_BATCH_SIZE],), producer=producer
            )


def _lock_chunk(qs, chunk_size: int):
    """Rows of `qs` for this chunk, locked so a concurrent run skips them (PostgreSQL)."""
    from django.db import connection

    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True, of=("self",))
    return list(qs[:chunk_size])


def notify_expiring_tokens(*, now: datetime | None = None, chunk_size: int = JOB_CHUNK_SIZE) -> list[int]:
    """One notification (email + `token.expiring` webhook) per running token that expires
    within TOKEN_EXPIRING_NOTIFY_HOURS, once per token (and per expiry, should a renewal move
    it). Returns the ids of tokens notified now.

    In chunks (keyset on expires_at, id) of the tokens whose current expiry is not marked as
    announced (the watermark `expiring_notified_for`: the expiry announced; the unique key stays the
    guarantee of one notice per token and expiry), locked with SKIP LOCKED so a
    concurrent run takes other ones; each chunk is one bulk insert and one update of the marks."""
    from django.db import connection

    from tokens.events import token_event_data

    now = now or timezone.now()
    horizon = now + timedelta(hours=settings.TOKEN_EXPIRING_NOTIFY_HOURS)
    if connection.vendor == "postgresql":
        return _notify_expiring_tokens_pg(now, horizon, chunk_size)
    base = (
        AccessToken.objects.filter(
            activated_at__isnull=False,
            revoked_at__isnull=True,
            expired_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=horizon,
            user__is_active=True,
        )
        .filter(
            Q(expiring_notified_for__isnull=True)
            | Q(expiring_notified_for__lt=F("expires_at"))
            | Q(expiring_notified_for__gt=F("expires_at"))
        )
        .select_related("user")
        .only(
            "pk",
            "prefix",
            "duration_hours",
            "scope",
            "cost",
            "auto_renew",
            "created_at",
            "activated_at",
            "expires_at",
            "revoked_at",
            "refund_amount",
            "user_id",
            "user__email",
            "user__language",
            "user__notify_token_expiring",
            "user__username",
            "user__is_active",
        )
        .order_by("expires_at", "pk")
    )
    notified: list[int] = []
    after = None
    while True:
        qs = base
        if after is not None:
            qs = qs.filter(Q(expires_at__gt=after[0]) | Q(expires_at=after[0], pk__gt=after[1]))
        with transaction.atomic():
            tokens = _lock_chunk(qs, chunk_size)
            items = []
            for token in tokens:
                items.append(
                    {
                        "user": token.user,
                        "kind": NotificationKind.TOKEN_EXPIRING,
                        "dedupe_key": token_expiring_dedupe_key(token),
                        "context": {
                            "token_id": token.pk,
                            "prefix": token.prefix,
                            "duration_hours": token.duration_hours,
                            "scope": token.scope,
                            "expires_at": token.expires_at.isoformat(),
                            "hours_left": max(0, int((token.expires_at - now).total_seconds() // 3600)),
                        },
                        "webhook_event": "token.expiring",
                        # Built (as at this moment) only for the few tokens an endpoint wants.
                        "webhook_data": partial(token_event_data, token),
                    }
                )
            # A token announced before the watermark existed: its key is taken, the insert of
            # this chunk falls back to one per item, which skips it (rare, once).
            created = notifications_create_many(items)
            # The watermark: these tokens' current expiry is announced (a rerun skips them).
            AccessToken.objects.filter(pk__in=[t.pk for t in tokens]).update(
                expiring_notified_for=F("expires_at")
            )
        keys = {n.dedupe_key for n in created}
        notified.extend(t.pk for t in tokens if token_expiring_dedupe_key(t) in keys)
        if len(tokens) < chunk_size:
            return notified
        after = (tokens[-1].expires_at, tokens[-1].pk)


# One statement per chunk decides, in the database, which tokens are announced now. The chunk's
# candidates are the running tokens in the window whose current expiry is not announced yet: the
# watermark `expiring_notified_for` (the expiry last announced) differs from `expires_at`, the
# predicate of the partial index token_unannounced_expiry_idx written exactly as the index has it
# (so the planner proves it), so a rerun with nothing to do reads an empty range instead of probing
# the dedupe key of every token in the window; keyset after the previous chunk's last
# (expires_at, id). They are inserted as notifications with ON CONFLICT (dedupe_key) DO NOTHING (a
# concurrent run that takes the same tokens waits for this one's insert, then skips them; a token
# announced before the watermark existed is skipped the same way) and marked with the expiry
# announced in the same statement (an expiry moved meanwhile, by a renewal, stays due). Every
# candidate comes back, with the notification's id and email status if it was inserted now.
# Mirrors `notifications_create_many` + `token_expiring_dedupe_key` + `email_language`.
_EXPIRING_CHUNK_SQL = """
WITH cand AS (
    SELECT t.id, t.user_id, t.prefix, t.duration_hours, t.scope, t.expires_at,
           %(kind)s || ':token:' || t.id::text || ':'
               || FLOOR(EXTRACT(EPOCH FROM t.expires_at))::bigint::text AS dedupe,
           COALESCE(u.email, '') <> '' AS has_email, u.notify_token_expiring AS wanted,
           CASE WHEN u.language = ANY(%(languages)s) THEN u.language ELSE %(default_language)s END
               AS language
    FROM tokens_accesstoken t JOIN accounts_user u ON u.id = t.user_id
    WHERE t.expired_at IS NULL AND t.revoked_at IS NULL
      AND (t.expiring_notified_for IS NULL OR t.expiring_notified_for < t.expires_at
           OR t.expiring_notified_for > t.expires_at)
      AND t.activated_at IS NOT NULL
      AND t.expires_at > %(now)s AND t.expires_at <= %(horizon)s AND u.is_active
      AND (t.expires_at, t.id) > (%(after_at)s, %(after_id)s)
    ORDER BY t.expires_at, t.id
    LIMIT %(limit)s
), ins AS (
    INSERT INTO notifications_notification
        (user_id, kind, dedupe_key, context, language, email_status, attempts, last_error, created_at)
    SELECT c.user_id, %(kind)s, c.dedupe,
           jsonb_build_object(
               'token_id', c.id,
               'prefix', c.prefix,
               'duration_hours', c.duration_hours,
               'scope', c.scope,
               'expires_at', to_char(c.expires_at AT TIME ZONE 'UTC',
                   CASE WHEN date_trunc('second', c.expires_at) = c.expires_at
                        THEN 'YYYY-MM-DD"T"HH24:MI:SS' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US' END)
                   || '+00:00',
               'hours_left', GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (c.expires_at - %(now)s)) / 3600))::int
           ),
           c.language,
           CASE WHEN c.has_email AND c.wanted THEN %(pending)s ELSE %(skipped)s END,
           0,
           CASE WHEN c.has_email AND NOT c.wanted THEN %(turned_off)s ELSE '' END,
           %(created_at)s
    FROM cand c
    ORDER BY c.expires_at, c.id
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, dedupe_key, email_status
), marked AS (
    UPDATE tokens_accesstoken t SET expiring_notified_for = c.expires_at
    FROM cand c
    WHERE t.id = c.id AND t.expires_at = c.expires_at
)
SELECT c.id, c.user_id, c.expires_at, ins.id, ins.email_status
FROM cand c LEFT JOIN ins ON ins.dedupe_key = c.dedupe
ORDER BY c.expires_at, c.id
"""


def _notify_expiring_tokens_pg(now: datetime, horizon: datetime, chunk_size: int) -> list[int]:
    """`notify_expiring_tokens` on PostgreSQL: one INSERT … SELECT … ON CONFLICT DO NOTHING
    RETURNING per chunk; emails (batched) and `token.expiring` webhooks (bulk) from its rows."""
    from django.db import connection

    from tokens.events import token_events_emit

    params = {
        "kind": NotificationKind.TOKEN_EXPIRING.value,
        "languages": [code for code, _ in settings.LANGUAGES],
        "default_language": settings.LANGUAGE_CODE,
        "now": now,
        "horizon": horizon,
        "limit": chunk_size,
        "pending": EmailStatus.PENDING.value,
        "skipped": EmailStatus.SKIPPED.value,
        "turned_off": EMAIL_TURNED_OFF,
        "created_at": timezone.now(),
    }
    after = (datetime(1, 1, 1, tzinfo=UTC), 0)
    notified: list[int] = []
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_EXPIRING_CHUNK_SQL, {**params, "after_at": after[0], "after_id": after[1]})
                rows = cursor.fetchall()
            created = [(token_id, user_id, status) for token_id, user_id, _, nid, status in rows if nid]
            email_ids = [nid for _, _, _, nid, status in rows if nid and status == EmailStatus.PENDING]
            if email_ids:
                transaction.on_commit(lambda ids=email_ids: _queue_emails(ids), robust=True)
            events = [(token_id, user_id) for token_id, user_id, _ in created]
            if events:  # outbox rows in this chunk's transaction; only the enqueue waits
                token_events_emit(tokens=events, event="token.expiring")
        notified.extend(token_id for token_id, _, _ in created)
        if len(rows) < chunk_size:
            return notified
        after = (rows[-1][2], rows[-1][0])


def notify_low_balance(*, now: datetime | None = None, chunk_size: int = JOB_CHUNK_SIZE) -> list[int]:
    """Email (and `balance.low` webhook) to each active user whose balance is below
    LOW_BALANCE_THRESHOLD, at most once per LOW_BALANCE_NOTIFY_EVERY_HOURS per user.

    Users who never had a ledger entry (registered, never topped up) are not told their empty
    balance is "low". In chunks (keyset on id): the chunk's users are taken under a row lock
    (FOR UPDATE SKIP LOCKED: a concurrent run takes other users, and the conditions are read
    again under the lock); those notified recently are found with one indexed `user_id IN (…)`
    query (not an anti-join, whose plan goes quadratic when the statistics lag behind a run's
    inserts); then one bulk insert. Returns the ids of users notified now."""
    now = now or timezone.now()
    threshold = Decimal(settings.LOW_BALANCE_THRESHOLD)
    since = now - timedelta(hours=settings.LOW_BALANCE_NOTIFY_EVERY_HOURS)
    # Users told within the period are left out before any lock is taken, so a run with nothing
    # to do locks nothing and is one query; the low users are walked in id order through the
    # partial index `user_low_balance_idx` (active users below 10), not the whole primary key.
    # The last notice is a scalar subquery (LIMIT 1): always a probe of the (user, kind,
    # created_at) index per low user, never an anti-join whose plan turns quadratic when the
    # statistics lag behind a run's inserts. The check under the lock below stays the authority.
    last_told = (
        Notification.objects.filter(user=OuterRef("pk"), kind=NotificationKind.BALANCE_LOW)
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    # One probe per low user: `last_told IS NULL OR last_told <= since` would compile the
    # subquery twice (two probes each); never told is the earliest time instead.
    never = datetime(1, 1, 1, tzinfo=UTC)
    base = (
        User.objects.filter(is_active=True, balance__lt=threshold)
        .filter(Exists(Transaction.objects.filter(user=OuterRef("pk"))))
        .annotate(last_told=Coalesce(Subquery(last_told), Value(never)))
        .filter(last_told__lte=since)
        .only("pk", "email", "language", "balance", "notify_low_balance", "is_active", "username")
        .order_by("pk")
    )
    with _without_jit():
        return _notify_low_balance_chunks(base, since, threshold, chunk_size)


@contextmanager
def _without_jit():
    """PostgreSQL compiles (JIT) a query whose estimated cost is high, which for the chunk query
    (an index walk that stops after 1 000 rows, estimated as a whole-table walk) costs ~200 ms a
    chunk against 6 ms of execution: off for the job's queries, then back to the default."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET jit")
        except DatabaseError:  # inside a failed outer transaction: its rollback undoes the SET
            pass


def _notify_low_balance_chunks(base, since, threshold, chunk_size: int) -> list[int]:
    notified: list[int] = []
    last = 0
    while True:
        with transaction.atomic():
            users = _lock_chunk(base.filter(pk__gt=last), chunk_size)
            recent = set(
                Notification.objects.filter(
                    user_id__in=[u.pk for u in users], kind=NotificationKind.BALANCE_LOW, created_at__gt=since
                ).values_list("user_id", flat=True)
            )
            due = [u for u in users if u.pk not in recent]
            items = []
            for user in due:
                balance = f"{user.balance:.2f}"
                items.append(
                    {
                        "user": user,
                        "kind": NotificationKind.BALANCE_LOW,
                        "context": {"balance": balance, "threshold": f"{threshold:.2f}"},
                        "webhook_event": "balance.low",
                        "webhook_data": {"balance": balance, "threshold": f"{threshold:.2f}"},
                    }
                )
            notifications_create_many(items)
        notified.extend(u.pk for u in due)
        if len(users) < chunk_size:
            return notified
        last = users[-1].pk


def notification_emails_requeue_stuck(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """The safety net (beat, every 10 min): emails whose trigger was lost (never queued: a crash
    between commit and enqueue, pending for over OUTBOX_GRACE_SECONDS; a retry whose queued
    trigger a broker restart dropped; a send whose worker died, lease expired) are claimed in
    chunks and sent here, each once (`zenzefi.outbox.sweep`). Returns their ids."""
    return outbox.sweep(EMAILS, now=now, limit=limit)
