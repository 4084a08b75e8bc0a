"""Access-token writes: purchase, issue, activate, revoke (with or without refund), expire."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record, request_origin
from currency.models import TransactionType
from currency.services import balance_change
from tokens import validation
from tokens.events import token_event_emit, token_events_emit
from tokens.metrics import token_purchases_total
from tokens.models import AccessToken, Scope, token_digest
from zenzefi.errors import Conflict, InvalidInput, NotFound
from zenzefi.money import to_money, to_money_down


@dataclass(frozen=True)
class IssuedToken:
    token: AccessToken
    plaintext: str  # shown once to the buyer; never stored or logged


def token_price(duration_hours: int) -> Decimal:
    """Price of one token from settings; any other duration is a 400."""
    try:
        if isinstance(duration_hours, bool):
            raise TypeError("a boolean is not a duration")
        return to_money(settings.TOKEN_PRICES[int(duration_hours)])
    except (KeyError, TypeError, ValueError):
        allowed = ", ".join(str(h) for h in sorted(settings.TOKEN_PRICES))
        raise InvalidInput(f"duration_hours: must be one of {allowed}.", code="invalid_duration") from None


def validate_scope(scope: str) -> str:
    if scope not in Scope.values:
        raise InvalidInput(f"scope: must be one of {', '.join(Scope.values)}.", code="invalid_scope")
    return scope


def token_issue(
    *,
    user: User,
    duration_hours: int,
    scope: str,
    cost: Decimal,
    auto_renew: bool = False,
    bundle_purchase: str = "",
) -> IssuedToken:
    """Create a token row (no charge: callers charge through the ledger in the same transaction)."""
    plaintext = secrets.token_urlsafe(48)
    token = AccessToken.objects.create(
        user=user,
        digest=token_digest(plaintext),
        prefix=plaintext[:8],
        duration_hours=duration_hours,
        scope=scope,
        cost=cost,
        auto_renew=auto_renew,
        bundle_purchase=bundle_purchase,
    )
    return IssuedToken(token=token, plaintext=plaintext)


@transaction.atomic
def token_purchase(
    *, user: User, duration_hours: int, scope: str = Scope.FULL, auto_renew: bool = False, request=None
) -> IssuedToken:
    price = token_price(duration_hours)
    validate_scope(scope)
    issued = token_issue(
        user=user, duration_hours=duration_hours, scope=scope, cost=price, auto_renew=auto_renew
    )
    token = issued.token
    balance_change(
        user=user,
        amount=-price,
        transaction_type=TransactionType.PURCHASE,
        description=f"Access token {duration_hours} h ({scope})",
        reference=f"token:{token.pk}",
        request=request,
    )
    audit_record(
        action="token.purchase",
        actor=user,
        resource_type="token",
        resource_id=token.pk,
        details={
            "prefix": token.prefix,
            "duration_hours": duration_hours,
            "scope": scope,
            "cost": str(price),
        },
        **request_origin(request),
    )

    def count():
        token_purchases_total.labels(duration_hours=str(duration_hours)).inc()

    transaction.on_commit(count)
    # Outbox: the delivery rows are written in this transaction; only the enqueue waits.
    token_event_emit(token_id=token.pk, user_id=token.user_id, event="token.purchased")
    return issued


def token_activate(
    *, token: AccessToken, now: datetime | None = None, ip: str | None = None, user_agent: str = ""
) -> AccessToken:
    """Start the clock at the first successful use. Idempotent under concurrent first requests:
    the conditional UPDATE lets exactly one caller activate; the others read its result.
    `ip`/`user_agent`: where the first use came from (the proxy's client), for the audit entry."""
    if token.activated_at is not None:
        return token
    now = now or timezone.now()
    with transaction.atomic():
        activated = AccessToken.objects.filter(
            pk=token.pk, activated_at__isnull=True, revoked_at__isnull=True
        ).update(activated_at=now, expires_at=now + timedelta(hours=token.duration_hours))
        if activated:
            audit_record(
                action="token.activate",
                actor=token.user,
                resource_type="token",
                resource_id=token.pk,
                details={"prefix": token.prefix},
                ip=ip,
                user_agent=user_agent,
            )
            transaction.on_commit(lambda: validation.forget(token.digest))
            # Outbox: the delivery rows are written in this transaction; only the enqueue waits.
            token_event_emit(token_id=token.pk, user_id=token.user_id, event="token.activated")
    token.refresh_from_db(fields=["activated_at", "expires_at", "revoked_at"])
    return token


def refund_for(token: AccessToken, now: datetime) -> Decimal:
    """cost × unused / total, rounded down to 0.01; full cost if never activated, 0 if expired."""
    if token.activated_at is None:
        return to_money(token.cost)
    if token.expires_at <= now:
        return Decimal("0.00")
    unused_us = (token.expires_at - now) // timedelta(microseconds=1)
    # The whole paid period: one duration, plus one per auto-renewal (renewals.services extends
    # expires_at and adds the price to cost), so the refund never exceeds what was paid.
    total_us = (token.expires_at - token.activated_at) // timedelta(microseconds=1)
    return to_money_down(token.cost * Decimal(unused_us) / Decimal(total_us))


@transaction.atomic
def token_revoke(
    *, token_id: int, actor: User, owner: User | None = None, refund: bool = True, request=None
) -> AccessToken:
    """Revoke a token. `owner` limits it to that user's tokens (404 otherwise). With `refund`,
    the pro-rata refund is credited exactly once (a second revoke is a 409 and pays nothing);
    staff force-revoke passes `refund=False`."""
    qs = AccessToken.objects.select_for_update(of=("self",))
    if owner is not None:
        qs = qs.filter(user=owner)
    token = qs.filter(pk=token_id).first()
    if token is None:
        raise NotFound("Token not found.", code="token_not_found")
    if token.revoked_at is not None:
        raise Conflict("This token is already revoked.", code="already_revoked")
    now = timezone.now()
    amount = refund_for(token, now) if refund else Decimal("0.00")
    # Conditional: even without row locks only one revoke can win.
    if not AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, refund_amount=amount
    ):
        raise Conflict("This token is already revoked.", code="already_revoked")
    token.revoked_at, token.refund_amount = now, amount
    if amount > 0:
        balance_change(
            user=token.user,
            amount=amount,
            transaction_type=TransactionType.REFUND,
            description=f"Refund for token {token.prefix}…",
            reference=f"token:{token.pk}",
            actor=actor,
            request=request,
        )
    audit_record(
        action="token.revoke" if refund else "token.force_revoke",
        actor=actor,
        resource_type="token",
        resource_id=token.pk,
        details={"prefix": token.prefix, "refund": str(amount), "owner_id": token.user_id},
        **request_origin(request),
    )
    transaction.on_commit(lambda: validation.mark_dead(token.digest, "revoked"))
    # Outbox: the delivery rows are written in this transaction; only the enqueue waits.
    token_event_emit(token_id=token.pk, user_id=token.user_id, event="token.revoked")
    return token


EXPIRE_CHUNK_SIZE = 1000


def tokens_expire_due(*, now: datetime | None = None, chunk_size: int = EXPIRE_CHUNK_SIZE) -> list[int]:
    """Mark tokens whose time ran out (once each), drop their cache entries (tombstones) and fire
    `token.expired`. Set-based, in chunks: per chunk one `UPDATE … RETURNING` over rows taken with
    `FOR UPDATE SKIP LOCKED` (two workers never take the same token), one Redis pipeline and one
    batch of webhook deliveries after commit. Each chunk continues after the previous one (keyset
    on expires_at, id), so no chunk walks again over the tokens just marked. Idempotent: a marked
    token is never taken again."""
    now = now or timezone.now()
    marked: list[int] = []
    after = None
    while True:
        with transaction.atomic():
            rows = _expire_chunk(now, chunk_size, after)
            if rows:
                digests = [digest for _, digest, _, _ in rows]
                events = [(pk, user_id) for pk, _, user_id, _ in rows]
                transaction.on_commit(lambda d=digests: validation.mark_dead_many(d, "expired"))
                token_events_emit(tokens=events, event="token.expired")  # outbox rows, this chunk
        marked.extend(pk for pk, _, _, _ in rows)
        if len(rows) < chunk_size:
            return marked
        after = max((expires_at, pk) for pk, _, _, expires_at in rows)


def _expire_chunk(now: datetime, chunk_size: int, after) -> list[tuple[int, str, int, datetime]]:
    """Mark up to `chunk_size` due tokens after `after` (expires_at, id); (id, digest, user_id,
    expires_at) of those marked now."""
    from django.db import connection

    if connection.vendor == "postgresql":
        start = after if after is not None else (datetime(1, 1, 1, tzinfo=UTC), 0)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE tokens_accesstoken SET expired_at = %s
                WHERE id IN (
                    SELECT id FROM tokens_accesstoken
                    WHERE expires_at <= %s AND expired_at IS NULL AND revoked_at IS NULL
                      AND (expires_at, id) > (%s, %s)
                    ORDER BY expires_at, id
                    LIMIT %s FOR UPDATE SKIP LOCKED
                ) AND expired_at IS NULL
                RETURNING id, digest, user_id, expires_at
                """,
                [now, now, *start, chunk_size],
            )
            return [tuple(row) for row in cursor.fetchall()]
    # Elsewhere (SQLite: the IMMEDIATE transaction already serialises writers).
    qs = AccessToken.objects.filter(expires_at__lte=now, expired_at__isnull=True, revoked_at__isnull=True)
    if after is not None:
        qs = qs.filter(Q(expires_at__gt=after[0]) | Q(expires_at=after[0], pk__gt=after[1]))
    rows = list(
        qs.order_by("expires_at", "pk").values_list("pk", "digest", "user_id", "expires_at")[:chunk_size]
    )
    AccessToken.objects.filter(pk__in=[row[0] for row in rows], expired_at__isnull=True).update(
        expired_at=now
    )
    return rows
