"""Token auto-renewal: a job renews tokens with `auto_renew` that expire within
AUTO_RENEW_WINDOW_MINUTES (1 h) by their duration at the current price, when the balance allows
(balance − price ≥ the user's `auto_renew_min_balance`), once per period.

A renewal *extends* the token (its `expires_at` moves by one duration, its `cost` grows by the
price) instead of issuing a new token: the customer's desktop client keeps working with the
same token, which it could not do with a new plaintext. Each renewal is a `TokenRenewal` row
(unique per token and period) with a PURCHASE ledger row, an audit entry, an email and a
`token.renewed` webhook. When the balance does not allow it, the customer gets one clear email
per period (`auto_renew_failed`) and nothing is charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record, audit_record_many, request_origin
from currency.models import TransactionType
from currency.services import BalanceChange, balance_change_many
from renewals.models import TokenRenewal
from tokens import validation
from tokens.models import AccessToken
from tokens.services import token_price
from zenzefi.errors import Conflict, InvalidInput, NotFound
from zenzefi.kv import get_kv
from zenzefi.money import to_money


@dataclass
class RenewalRun:
    renewed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # not enough balance (notified once per period)
    skipped: list[int] = field(default_factory=list)  # already renewed, or no longer eligible


def _window(now: datetime) -> datetime:
    return now + timedelta(minutes=settings.AUTO_RENEW_WINDOW_MINUTES)


def _eligible(token: AccessToken, now: datetime) -> bool:
    return (
        token.auto_renew
        and token.revoked_at is None
        and token.expired_at is None
        and token.expires_at is not None
        and now < token.expires_at <= _window(now)
    )


RENEW_CHUNK_SIZE = 500


def _due(now: datetime):
    return AccessToken.objects.filter(
        auto_renew=True,
        revoked_at__isnull=True,
        expired_at__isnull=True,
        activated_at__isnull=False,
        expires_at__gt=now,
        expires_at__lte=_window(now),
        user__is_active=True,
    )


def tokens_renew_due(*, now: datetime | None = None, chunk_size: int = RENEW_CHUNK_SIZE) -> RenewalRun:
    """The job: try each eligible token once. Safe to run twice or concurrently.

    In chunks (keyset on expires_at, id), each in one transaction: the chunk's tokens are locked
    with SKIP LOCKED (a concurrent run takes other ones), then their owners in id order; the
    decisions are made under those locks and written in bulk (tokens, renewal rows, notices,
    webhooks, cache entries), the ledger's rows too (`balance_change_many`: the rules of the one
    `balance_change`, its PURCHASE rows and audit entries) and the `token.renew` audit entries."""
    now = now or timezone.now()
    run = RenewalRun()
    seen: set[int] = set()  # a period shorter than the window must not renew twice in one run
    after = None
    while True:
        qs = _due(now)
        if after is not None:
            qs = qs.filter(Q(expires_at__gt=after[0]) | Q(expires_at=after[0], pk__gt=after[1]))
        qs = qs.order_by("expires_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        tokens: list[AccessToken] = []
        try:
            with transaction.atomic():
                fetched = list(qs[:chunk_size])
                # The keyset position before the renewals below move these tokens' expiry.
                last = (fetched[-1].expires_at, fetched[-1].pk) if fetched else None
                tokens = [t for t in fetched if t.pk not in seen]
                outcomes = _renew_locked(tokens, now)
        except IntegrityError:  # a concurrent run recorded one of these periods first: one by one
            outcomes = {t.pk: token_renew(token_id=t.pk, now=now) for t in tokens}
        for token in tokens:
            seen.add(token.pk)
            outcome = outcomes.get(token.pk, "skipped")
            {"renewed": run.renewed, "insufficient": run.failed}.get(outcome, run.skipped).append(token.pk)
        if len(fetched) < chunk_size:
            return run
        after = last


def token_renew(*, token_id: int, now: datetime | None = None) -> str:
    """Renew one token's current period if due: "renewed", "insufficient", "already" or "skipped"."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            token = AccessToken.objects.select_for_update(of=("self",)).filter(pk=token_id).first()
            if token is None:
                return "skipped"
            return _renew_locked([token], now).get(token_id, "skipped")
    except IntegrityError:
        return "already"  # a concurrent run recorded this period first


def _renew_locked(tokens: list[AccessToken], now: datetime) -> dict[int, str]:
    """Renew `tokens` (locked by the caller, in its transaction): {token id: outcome}."""
    outcomes: dict[int, str] = {}
    tokens = [t for t in tokens if _eligible(t, now)]
    if not tokens:
        return outcomes
    renewed_periods = set(
        TokenRenewal.objects.filter(token__in=[t.pk for t in tokens]).values_list("token_id", "period_end")
    )
    users = {
        u.pk: u
        for u in User.objects.select_for_update(of=("self",))
        .filter(pk__in=sorted({t.user_id for t in tokens}))
        .order_by("pk")
    }
    prices: dict[int, Decimal | None] = {}
    renew: list[tuple[AccessToken, User, Decimal]] = []
    short: list[tuple[AccessToken, User, Decimal | None, Decimal]] = []
    for token in tokens:
        if (token.pk, token.expires_at) in renewed_periods:
            outcomes[token.pk] = "already"
            continue
        user = users[token.user_id]
        if token.duration_hours not in prices:
            try:
                prices[token.duration_hours] = token_price(token.duration_hours)
            except InvalidInput:
                prices[token.duration_hours] = None
        price = prices[token.duration_hours]
        keep = to_money(user.auto_renew_min_balance or 0)
        if price is None or user.balance - price < keep:
            short.append((token, user, price, keep))
            outcomes[token.pk] = "insufficient"
            continue
        user.balance -= price  # what this chunk's next decision for the same owner sees
        renew.append((token, user, price))
        outcomes[token.pk] = "renewed"
    if renew:
        _write_renewals(renew)
    if short:
        _notify_failed_many(short)
    return outcomes


def _write_renewals(renew: list[tuple[AccessToken, User, Decimal]]) -> None:
    """The chunk's renewals, each statement for the whole chunk: the ledger's PURCHASE rows and
    their audit entries (`balance_change_many`: the rules of `balance_change`), the tokens, the
    renewal rows, the `token.renew` audit entries."""
    periods = [token.expires_at for token, _user, _price in renew]
    rows = balance_change_many(
        [
            BalanceChange(
                user=user,
                amount=-price,
                transaction_type=TransactionType.PURCHASE,
                description=f"Auto-renewal of token {token.prefix}… ({token.duration_hours} h)",
                reference=f"token:{token.pk}",
                audit_details={"auto_renewal": True, "period_end": period_end.isoformat()},
            )
            for (token, user, price), period_end in zip(renew, periods, strict=True)
        ]
    )
    renewals, done, digests = [], [], []
    for (token, user, price), period_end, row in zip(renew, periods, rows, strict=True):
        token.expires_at = period_end + timedelta(hours=token.duration_hours)
        token.cost = token.cost + price
        renewals.append(
            TokenRenewal(
                token=token,
                period_end=period_end,
                new_expires_at=token.expires_at,
                price=price,
                transaction=row,
            )
        )
        done.append((token, user, price, row.balance_after, period_end))
        digests.append(token.digest)
    # The rows are locked by the caller: their expiry and cost are what was read.
    _write_tokens([t for t, *_ in renew])
    TokenRenewal.objects.bulk_create(renewals)
    audit_record_many(
        {
            "action": "token.renew",
            "actor": user,
            "resource_type": "token",
            "resource_id": token.pk,
            "details": {
                "prefix": token.prefix,
                "price": str(price),
                "from": period_end.isoformat(),
                "to": token.expires_at.isoformat(),
                "transaction_id": renewal.transaction.pk,
            },
        }
        for (token, user, price, _balance, period_end), renewal in zip(done, renewals, strict=True)
    )
    # The validation cache entries, in one kv call (the next validation reloads each token).
    transaction.on_commit(lambda: get_kv().delete(*(validation.cache_key(d) for d in digests)))
    _notify_renewed_many(done)


def _write_tokens(tokens: list[AccessToken]) -> None:
    """The renewed tokens' expiry and cost in one statement. PostgreSQL: `UPDATE … FROM (VALUES
    …)` (bulk_update's CASE per field and row is quadratic work); elsewhere bulk_update."""
    if connection.vendor != "postgresql" or len(tokens) == 1:
        AccessToken.objects.bulk_update(tokens, ["expires_at", "cost"])
        return
    values = ", ".join(["(%s::bigint, %s::timestamptz, %s::numeric)"] * len(tokens))
    params = [p for t in tokens for p in (t.pk, t.expires_at, t.cost)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AccessToken._meta.db_table} AS t SET expires_at = v.expires_at, cost = v.cost "  # noqa: S608
            f"FROM (VALUES {values}) AS v(id, expires_at, cost) WHERE t.id = v.id",
            params,
        )


def _notify_renewed_many(done) -> None:
    from notifications.models import NotificationKind
    from notifications.services import notifications_create_many
    from tokens.events import token_event_data

    items = []
    for token, user, price, balance, period_end in done:
        items.append(
            {
                "user": user,
                "kind": NotificationKind.AUTO_RENEW_DONE,
                "context": {
                    "token_id": token.pk,
                    "prefix": token.prefix,
                    "duration_hours": token.duration_hours,
                    "price": f"{price:.2f}",
                    "balance": f"{balance:.2f}",
                    "expires_at": token.expires_at.isoformat(),
                },
                "dedupe_key": f"auto_renew_done:token:{token.pk}:{period_end.isoformat()}",
                "webhook_event": "token.renewed",
                "webhook_data": {
                    **token_event_data(token),
                    "price": f"{price:.2f}",
                    "previous_expires_at": period_end.isoformat(),
                },
            }
        )
    notifications_create_many(items)


def _notify_failed_many(short) -> None:
    """One clear notice per token and period (and its audit entry); a period already told is left."""
    from notifications.models import Notification, NotificationKind
    from notifications.services import notifications_create_many

    def key(token):
        return f"auto_renew_failed:token:{token.pk}:{token.expires_at.isoformat()}"

    told = set(
        Notification.objects.filter(dedupe_key__in=[key(t) for t, *_ in short]).values_list(
            "dedupe_key", flat=True
        )
    )
    items, audits = [], []
    for token, user, price, keep in short:
        if key(token) in told:
            continue
        reason = "price_unavailable" if price is None else "insufficient_balance"
        items.append(
            {
                "user": user,
                "kind": NotificationKind.AUTO_RENEW_FAILED,
                "context": {
                    "token_id": token.pk,
                    "prefix": token.prefix,
                    "duration_hours": token.duration_hours,
                    "price": f"{price:.2f}" if price is not None else "",
                    "balance": f"{user.balance:.2f}",
                    "min_balance": f"{keep:.2f}",
                    "reason": reason,
                    "expires_at": token.expires_at.isoformat(),
                },
                "dedupe_key": key(token),
            }
        )
        audits.append((token, user, price, keep, reason))
    created = {n.dedupe_key for n in notifications_create_many(items)}
    audit_record_many(
        {
            "action": "token.renew_failed",
            "actor": user,
            "resource_type": "token",
            "resource_id": token.pk,
            "details": {
                "prefix": token.prefix,
                "reason": reason,
                "price": str(price) if price is not None else None,
                "balance": str(user.balance),
                "min_balance": str(keep),
            },
        }
        for token, user, price, keep, reason in audits
        if key(token) in created
    )


# --- switches and preferences ---------------------------------------------------------------------


@transaction.atomic
def token_auto_renew_set(
    *, user: User | None, token_id: int, auto_renew: bool, actor: User | None = None, request=None
) -> AccessToken:
    """Turn a token's auto-renewal on or off, only on a token neither revoked nor expired (409
    `token_not_usable` otherwise). `user` is the owner (their tokens only: the API and the
    pages); staff in the admin pass `user=None` and themselves as `actor`, audited as
    `admin.token_update`, the owner's change as `token.auto_renew`."""
    actor = actor or user
    tokens = AccessToken.objects.select_for_update(of=("self",)).filter(pk=token_id)
    if user is not None:
        tokens = tokens.filter(user=user)
    token = tokens.first()
    if token is None:
        raise NotFound("Token not found.", code="token_not_found")
    if (
        token.revoked_at is not None
        or token.expired_at is not None
        or (token.expires_at is not None and token.expires_at <= timezone.now())
    ):
        raise Conflict("This token is revoked or expired.", code="token_not_usable")
    if token.auto_renew != auto_renew:
        AccessToken.objects.filter(pk=token.pk).update(auto_renew=auto_renew)
        token.auto_renew = auto_renew
        by_staff = user is None
        audit_record(
            action="admin.token_update" if by_staff else "token.auto_renew",
            actor=actor,
            resource_type="token",
            resource_id=token.pk,
            details={
                "prefix": token.prefix,
                "auto_renew": auto_renew,
                **({"owner_id": token.user_id, "by": actor.username} if by_staff else {}),
            },
            **request_origin(request),
        )
    return token


def auto_renew_min_balance_set(*, user: User, amount: Decimal, request=None) -> User:
    amount = Decimal(amount)
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(
            "auto_renew_min_balance: a non-negative amount with at most two decimals.", code="invalid_amount"
        )
    if amount > Decimal("9999999999.99"):
        raise InvalidInput("auto_renew_min_balance: too large.", code="invalid_amount")
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(auto_renew_min_balance=amount)
        audit_record(
            action="user.auto_renew_preference",
            actor=user,
            resource_type="user",
            resource_id=user.pk,
            details={"auto_renew_min_balance": str(amount)},
            **request_origin(request),
        )
    user.auto_renew_min_balance = amount
    return user
