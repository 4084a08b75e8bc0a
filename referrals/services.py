"""The referral bonus (SPEC §6): 10 % of a referred user's first top-up larger than 100 ZNC,
credited to the referrer exactly once per referred user.

Called from `payments.deposits.deposit_credit`, the one path of completed top-ups (every
payment provider, the mock one included), inside the deposit's transaction. Staff
adjustments and other ledger types never reach it. Exactly once: both users are locked in id
order before the deposit, and the qualification is recorded as a `ReferralBonus` row whose
`referred` is unique, in the same transaction as the bonus.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import User
from audit.services import audit_record, request_origin
from currency.models import Transaction, TransactionType
from currency.services import balance_change
from referrals.models import ReferralBonus
from zenzefi.money import to_money


def referral_bonus_amount(deposit_amount: Decimal) -> Decimal:
    """REFERRAL_BONUS_PERCENT of the deposit, rounded half-up to 0.01."""
    return to_money(Decimal(deposit_amount) * settings.REFERRAL_BONUS_PERCENT / Decimal(100))


def referral_lock_users(*, user_id: int) -> int | None:
    """Lock the depositor and their referrer (if any) in id order; returns the referrer's id.

    Called before the deposit's own lock so two users are always locked in the same order."""
    referrer_id = User.objects.filter(pk=user_id).values_list("referred_by_id", flat=True).first()
    ids = sorted({user_id, referrer_id} - {None})
    list(
        User.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return referrer_id


def referral_bonus_on_deposit(*, deposit: Transaction, request=None) -> ReferralBonus | None:
    """Credit the referrer if `deposit` is the referred user's first top-up above the minimum.

    Top-ups of at most REFERRAL_MIN_TOPUP neither qualify nor use the bonus up."""
    if deposit.type != TransactionType.DEPOSIT or deposit.amount <= settings.REFERRAL_MIN_TOPUP:
        return None
    referred = User.objects.only("pk", "username", "referred_by_id").get(pk=deposit.user_id)
    if referred.referred_by_id is None or referred.referred_by_id == referred.pk:
        return None
    if ReferralBonus.objects.filter(referred_id=referred.pk).exists():
        return None
    amount = referral_bonus_amount(deposit.amount)
    if amount <= 0:
        return None
    referrer = User.objects.get(pk=referred.referred_by_id)
    try:
        with transaction.atomic():
            bonus_row = balance_change(
                user=referrer,
                amount=amount,
                transaction_type=TransactionType.REFERRAL_BONUS,
                description=f"Referral bonus: first top-up of {referred.username}",
                reference=f"referral:{referred.pk}",
                request=request,
                audit_details={"referred_id": referred.pk, "deposit_transaction_id": deposit.pk},
            )
            User.objects.filter(pk=referrer.pk).update(
                referral_bonus_earned=F("referral_bonus_earned") + amount
            )
            record = ReferralBonus.objects.create(
                referrer=referrer,
                referred=referred,
                deposit=deposit,
                bonus=bonus_row,
                deposit_amount=deposit.amount,
                amount=amount,
            )
    except IntegrityError:
        # The referred user already qualified (a concurrent deposit won): no second bonus.
        return None
    referrer.refresh_from_db(fields=["referral_bonus_earned", "balance"])
    audit_record(
        action="referral.bonus",
        actor=referrer,
        resource_type="user",
        resource_id=referrer.pk,
        details={
            "referred_id": referred.pk,
            "referred_username": referred.username,
            "deposit_amount": str(deposit.amount),
            "bonus": str(amount),
            "transaction_id": bonus_row.pk,
        },
        **request_origin(request),
    )
    _notify(referrer=referrer, referred=referred, record=record)
    return record


def _notify(*, referrer: User, referred: User, record: ReferralBonus) -> None:
    """Email + `referral.bonus` webhook, queued after commit by the notifications service."""
    from notifications.models import NotificationKind
    from notifications.services import notification_create

    context = {
        "referred_username": referred.username,
        "deposit_amount": f"{record.deposit_amount:.2f}",
        "bonus": f"{record.amount:.2f}",
        "total_bonus": f"{referrer.referral_bonus_earned:.2f}",
        "balance": f"{referrer.balance:.2f}",
    }
    notification_create(
        user=referrer,
        kind=NotificationKind.REFERRAL_BONUS,
        context=context,
        dedupe_key=f"referral_bonus:referred:{referred.pk}",
        webhook_event="referral.bonus",
        webhook_data={**context, "referral_bonus_id": record.pk, "transaction_id": record.bonus_id},
    )
