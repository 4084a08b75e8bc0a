"""The ledger: the one function that changes a balance, and the top-up amount rule.

The ledger is a leaf among the products: it knows no referral and no payment. A completed
top-up (the deposit and the referral rule in one transaction) is orchestrated above it, in
`payments.deposits` (docs/architecture.md "Layers")."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction

from accounts.models import User
from audit.services import audit_record, request_origin
from currency.models import REVENUE_TYPES, Transaction, TransactionType
from zenzefi.errors import InsufficientFunds, InvalidInput
from zenzefi.metrics import znc_balance_changes_total, znc_revenue_total
from zenzefi.money import to_money


@transaction.atomic
def balance_change(
    *,
    user: User,
    amount: Decimal,
    transaction_type: str,
    description: str = "",
    reference: str = "",
    actor: User | None = None,
    request=None,
    audit_details: dict | None = None,
) -> Transaction:
    """Add `amount` (signed) to the user's balance and write its `Transaction` row.

    Locks the user row (PostgreSQL) and updates conditionally, so concurrent changes queue
    and a debit never overdraws: an insufficient balance raises `InsufficientFunds` (402)
    and writes nothing. Also writes the audit entry, in the same database transaction.
    """
    if transaction_type not in TransactionType.values:
        raise InvalidInput(f"Unknown transaction type {transaction_type!r}.")
    amount = to_money(amount)
    if amount == 0:
        raise InvalidInput("A balance change cannot be zero.", code="zero_amount")

    current = User.objects.select_for_update(of=("self",)).values_list("balance", flat=True).get(pk=user.pk)
    new_balance = current + amount
    if new_balance < 0:
        raise InsufficientFunds(
            f"Insufficient balance: {current} ZNC available, {-amount} ZNC needed.",
            extra={"balance": str(current), "required": str(-amount)},
        )
    updated = User.objects.filter(pk=user.pk, balance=current).update(balance=new_balance)
    if updated != 1:  # pragma: no cover - only without row locks (never on PostgreSQL)
        raise InsufficientFunds("The balance changed concurrently; try again.", code="balance_conflict")

    row = Transaction.objects.create(
        user_id=user.pk,
        amount=amount,
        balance_after=new_balance,
        type=transaction_type,
        description=description[:255],
        reference=reference[:128],
    )
    audit_record(
        action="balance.change",
        actor=actor or user,
        resource_type="user",
        resource_id=user.pk,
        details={
            "transaction_id": row.pk,
            "type": transaction_type,
            "amount": str(amount),
            "balance_after": str(new_balance),
            "reference": reference,
            "description": description[:255],
            **(audit_details or {}),
        },
        **request_origin(request),
    )
    user.balance = new_balance
    operation = transaction_type.lower()
    transaction.on_commit(lambda: znc_balance_changes_total.labels(operation=operation).inc())
    if transaction_type in REVENUE_TYPES:  # the same rows as currency.selectors.sales
        transaction.on_commit(lambda: znc_revenue_total.inc(float(-amount)))
    return row


# A staff adjustment moves at most this much either way (the admin form and the staff API
# declare their fields with it; `balance_adjust` enforces it).
ADJUSTMENT_LIMIT = Decimal("1000000")
ADJUSTMENT_REASON_MAX_LENGTH = 255


@transaction.atomic
def balance_adjust(*, user: User, amount: Decimal, reason: str, actor: User, request=None) -> Transaction:
    """A staff balance adjustment: the one entry point for the admin's "Adjust balance" page and
    `PATCH admin/users/{id}` (through `staff.services.user_admin_update`).

    `amount` is signed, not zero, at most ADJUSTMENT_LIMIT either way with two decimals; `reason`
    is required and becomes the ledger description. Writes one ADJUSTMENT row referenced
    `admin:<actor id>` and its `balance.change` audit entry (with the reason and who did it);
    a debit beyond the balance is a 402 and writes nothing."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("balance_adjustment.reason: a reason is required.", code="invalid_adjustment")
    if len(reason) > ADJUSTMENT_REASON_MAX_LENGTH:
        raise InvalidInput(
            f"balance_adjustment.reason: at most {ADJUSTMENT_REASON_MAX_LENGTH} characters.",
            code="invalid_adjustment",
        )
    plain = isinstance(amount, Decimal) and amount.is_finite()
    if not plain or amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(
            "balance_adjustment.amount: a number with at most two decimals.", code="invalid_adjustment"
        )
    if abs(amount) > ADJUSTMENT_LIMIT:
        raise InvalidInput(
            f"balance_adjustment.amount: at most {ADJUSTMENT_LIMIT} ZNC either way.",
            code="invalid_adjustment",
        )
    return balance_change(
        user=user,
        amount=amount,
        transaction_type=TransactionType.ADJUSTMENT,
        description=reason,
        reference=f"admin:{actor.pk}",
        actor=actor,
        request=request,
        audit_details={"reason": reason, "by": actor.username},
    )


def validate_topup_amount(amount: Decimal) -> Decimal:
    """Top-ups are between TOPUP_MIN_AMOUNT and TOPUP_MAX_AMOUNT with at most two decimals."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidInput("amount: must be a number.", code="invalid_amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput("amount: at most two decimal places.", code="invalid_amount")
    if not settings.TOPUP_MIN_AMOUNT <= amount <= settings.TOPUP_MAX_AMOUNT:
        raise InvalidInput(
            f"amount: must be between {settings.TOPUP_MIN_AMOUNT} and {settings.TOPUP_MAX_AMOUNT} ZNC.",
            code="invalid_amount",
        )
    return amount
