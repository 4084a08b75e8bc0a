"""Completed top-ups: the DEPOSIT and, in the same transaction, the referral rule (SPEC §6).

The orchestration of two lower apps, the ledger (`currency.services.balance_change`) and the
referral bonus (`referrals.services`), so it sits above both, with the top-up (docs/architecture.md
"Layers"). Every payment provider's completion and the mock top-up end here.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import transaction

from accounts.models import User
from currency.models import Transaction, TransactionType
from currency.services import balance_change, validate_topup_amount
from referrals.services import referral_bonus_on_deposit, referral_lock_users


@transaction.atomic
def deposit_credit(
    *,
    user: User,
    amount: Decimal,
    description: str,
    reference: str,
    actor: User | None = None,
    request=None,
    audit_details: dict | None = None,
) -> Transaction:
    """A completed top-up (every payment provider, the mock one included): the DEPOSIT and,
    in the same transaction, the referral rule (SPEC §6). The depositor and their referrer are
    locked in id order first, so concurrent deposits and bonuses cannot deadlock."""
    referral_lock_users(user_id=user.pk)
    row = balance_change(
        user=user,
        amount=amount,
        transaction_type=TransactionType.DEPOSIT,
        description=description,
        reference=reference,
        actor=actor,
        request=request,
        audit_details=audit_details,
    )
    referral_bonus_on_deposit(deposit=row, request=request)
    return row


@transaction.atomic
def deposit_mock(*, user: User, amount: Decimal, request=None) -> Transaction:
    """Credit a top-up directly (testing aid, only while MOCK_PAYMENTS_ENABLED)."""
    amount = validate_topup_amount(amount)
    return deposit_credit(
        user=user,
        amount=amount,
        description="Mock top-up",
        reference=f"mock:{uuid.uuid4().hex}",
        request=request,
        audit_details={"provider": "mock"},
    )
