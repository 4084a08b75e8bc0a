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
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record, request_origin
from currency.models import TransactionType
from currency.services import balance_change
from renewals.models import TokenRenewal
from tokens import validation
from tokens.models import AccessToken
from tokens.services import token_price
from zenzefi.errors import Conflict, InvalidInput, NotFound
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


def tokens_renew_due(*, now: datetime | None = None) -> RenewalRun:
    """The job: try each eligible token once. Safe to run twice or concurrently."""
    now = now or timezone.now()
    run = RenewalRun()
    ids = list(
        AccessToken.objects.filter(
            auto_renew=True,
            revoked_at__isnull=True,
            expired_at__isnull=True,
            activated_at__isnull=False,
            expires_at__gt=now,
            expires_at__lte=_window(now),
            user__is_active=True,
        )
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)
    )
    for token_id in ids:
        outcome = token_renew(token_id=token_id, now=now)
        {"renewed": run.renewed, "insufficient": run.failed}.get(outcome, run.skipped).append(token_id)
    return run


def token_renew(*, token_id: int, now: datetime | None = None) -> str:
    """Renew one token's current period if due: "renewed", "insufficient", "already" or "skipped"."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _renew(token_id=token_id, now=now)
    except IntegrityError:
        return "already"  # a concurrent run recorded this period first


def _renew(*, token_id: int, now: datetime) -> str:
    token = AccessToken.objects.select_for_update(of=("self",)).filter(pk=token_id).first()
    if token is None or not _eligible(token, now):
        return "skipped"
    period_end = token.expires_at
    if TokenRenewal.objects.filter(token=token, period_end=period_end).exists():
        return "already"
    user = User.objects.select_for_update(of=("self",)).get(pk=token.user_id)
    try:
        price = token_price(token.duration_hours)
    except InvalidInput:
        price = None
    keep = to_money(user.auto_renew_min_balance or 0)
    if price is None or user.balance - price < keep:
        _notify_failed(token=token, user=user, price=price, keep=keep, period_end=period_end)
        return "insufficient"

    new_expires_at = period_end + timedelta(hours=token.duration_hours)
    moved = AccessToken.objects.filter(pk=token.pk, expires_at=period_end, revoked_at__isnull=True).update(
        expires_at=new_expires_at, cost=F("cost") + price
    )
    if not moved:  # pragma: no cover - the row lock prevents it on PostgreSQL
        return "skipped"
    row = balance_change(
        user=user,
        amount=-price,
        transaction_type=TransactionType.PURCHASE,
        description=f"Auto-renewal of token {token.prefix}… ({token.duration_hours} h)",
        reference=f"token:{token.pk}",
        audit_details={"auto_renewal": True, "period_end": period_end.isoformat()},
    )
    TokenRenewal.objects.create(
        token=token, period_end=period_end, new_expires_at=new_expires_at, price=price, transaction=row
    )
    audit_record(
        action="token.renew",
        actor=user,
        resource_type="token",
        resource_id=token.pk,
        details={
            "prefix": token.prefix,
            "price": str(price),
            "from": period_end.isoformat(),
            "to": new_expires_at.isoformat(),
            "transaction_id": row.pk,
        },
    )
    digest = token.digest
    transaction.on_commit(lambda: validation.forget(digest))
    token.refresh_from_db()
    _notify_renewed(token=token, user=user, price=price, balance=row.balance_after, period_end=period_end)
    return "renewed"


def _notify_renewed(*, token: AccessToken, user: User, price: Decimal, balance: Decimal, period_end) -> None:
    from notifications.models import NotificationKind
    from notifications.services import notification_create
    from tokens.events import token_event_data

    notification_create(
        user=user,
        kind=NotificationKind.AUTO_RENEW_DONE,
        context={
            "token_id": token.pk,
            "prefix": token.prefix,
            "duration_hours": token.duration_hours,
            "price": f"{price:.2f}",
            "balance": f"{balance:.2f}",
            "expires_at": token.expires_at.isoformat(),
        },
        dedupe_key=f"auto_renew_done:token:{token.pk}:{period_end.isoformat()}",
        webhook_event="token.renewed",
        webhook_data={
            **token_event_data(token),
            "price": f"{price:.2f}",
            "previous_expires_at": period_end.isoformat(),
        },
    )


def _notify_failed(*, token: AccessToken, user: User, price, keep: Decimal, period_end) -> None:
    from notifications.models import NotificationKind
    from notifications.services import notification_create

    reason = "price_unavailable" if price is None else "insufficient_balance"
    created = notification_create(
        user=user,
        kind=NotificationKind.AUTO_RENEW_FAILED,
        context={
            "token_id": token.pk,
            "prefix": token.prefix,
            "duration_hours": token.duration_hours,
            "price": f"{price:.2f}" if price is not None else "",
            "balance": f"{user.balance:.2f}",
            "min_balance": f"{keep:.2f}",
            "reason": reason,
            "expires_at": period_end.isoformat(),
        },
        dedupe_key=f"auto_renew_failed:token:{token.pk}:{period_end.isoformat()}",
    )
    if created is not None:
        audit_record(
            action="token.renew_failed",
            actor=user,
            resource_type="token",
            resource_id=token.pk,
            details={
                "prefix": token.prefix,
                "reason": reason,
                "price": str(price) if price is not None else None,
                "balance": str(user.balance),
                "min_balance": str(keep),
            },
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
