"""The ledger: the one function that changes a balance, and the top-up amount rule.

The ledger is a leaf among the products: it knows no referral and no payment. A completed
top-up (the deposit and the referral rule in one transaction) is orchestrated above it, in
`payments.deposits` (docs/architecture.md "Layers")."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, DecimalField, Q, Value, When

from accounts.models import User
from audit.services import audit_record_many, request_origin
from currency.models import REVENUE_TYPES, Transaction, TransactionType
from zenzefi.errors import InsufficientFunds, InvalidInput
from zenzefi.metrics import znc_balance_changes_total, znc_revenue_total
from zenzefi.money import to_money


@dataclass(frozen=True)
class BalanceChange:
    """One signed change for `balance_change_many` (the arguments of `balance_change`)."""

    user: User
    amount: Decimal
    transaction_type: str
    description: str = ""
    reference: str = ""
    actor: User | None = None
    audit_details: dict | None = None


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
    One change of `balance_change_many` (the one implementation of the rules)."""
    change = BalanceChange(
        user=user,
        amount=amount,
        transaction_type=transaction_type,
        description=description,
        reference=reference,
        actor=actor,
        audit_details=audit_details,
    )
    return balance_change_many([change], request=request)[0]


@transaction.atomic
def balance_change_many(changes: Sequence[BalanceChange], *, request=None) -> list[Transaction]:
    """Apply `changes` in order, in one database transaction, with the rules of `balance_change`
    and a number of queries that does not grow with the changes: the users' rows locked in id
    order (one query), their balances updated (one), the `Transaction` rows (one bulk insert) and
    their `balance.change` audit entries (one bulk insert). Two changes for one user run in order:
    each row's `balance_after` is the running balance.

    All or nothing: if any change would take a balance below zero, `InsufficientFunds` is raised
    for the first such change and nothing of the batch is written (a caller that wants the others
    decides insufficiency before, as the renewal job does). Returns the rows in the order given;
    each change's `user.balance` is set to its balance after that change."""
    changes = list(changes)
    amounts = []
    for change in changes:
        if change.transaction_type not in TransactionType.values:
            raise InvalidInput(f"Unknown transaction type {change.transaction_type!r}.")
        amount = to_money(change.amount)
        if amount == 0:
            raise InvalidInput("A balance change cannot be zero.", code="zero_amount")
        amounts.append(amount)
    if not changes:
        return []

    user_ids = sorted({change.user.pk for change in changes})
    locked = User.objects.select_for_update(of=("self",)).filter(pk__in=user_ids).order_by("pk")
    before = dict(locked.values_list("pk", "balance"))
    if len(before) != len(user_ids):
        raise User.DoesNotExist("A balance change names a user that does not exist.")
    running = dict(before)
    balances_after = []
    for change, amount in zip(changes, amounts, strict=True):
        current = running[change.user.pk]
        new_balance = current + amount
        if new_balance < 0:
            raise InsufficientFunds(
                f"Insufficient balance: {current} ZNC available, {-amount} ZNC needed.",
                extra={"balance": str(current), "required": str(-amount)},
            )
        running[change.user.pk] = new_balance
        balances_after.append(new_balance)

    moved = {pk: running[pk] for pk in user_ids if running[pk] != before[pk]}
    # Conditional on the balance read under the lock (as before: never a lost update).
    updated = _write_balances(moved, before)
    if updated != len(moved):  # pragma: no cover - only without row locks (never on PostgreSQL)
        raise InsufficientFunds("The balance changed concurrently; try again.", code="balance_conflict")

    rows = Transaction.objects.bulk_create(
        [
            Transaction(
                user_id=change.user.pk,
                amount=amount,
                balance_after=new_balance,
                type=change.transaction_type,
                description=change.description[:255],
                reference=change.reference[:128],
            )
            for change, amount, new_balance in zip(changes, amounts, balances_after, strict=True)
        ]
    )
    origin = request_origin(request)
    audit_record_many(
        [
            {
                "action": "balance.change",
                "actor": change.actor or change.user,
                "resource_type": "user",
                "resource_id": change.user.pk,
                "details": {
                    "transaction_id": row.pk,
                    "type": change.transaction_type,
                    "amount": str(amount),
                    "balance_after": str(new_balance),
                    "reference": change.reference,
                    "description": change.description[:255],
                    **(change.audit_details or {}),
                },
                **origin,
            }
            for change, amount, new_balance, row in zip(changes, amounts, balances_after, rows, strict=True)
        ]
    )
    counted = [(change.transaction_type, amount) for change, amount in zip(changes, amounts, strict=True)]
    for change, new_balance in zip(changes, balances_after, strict=True):
        change.user.balance = new_balance
    transaction.on_commit(lambda: _count_changes(counted))
    return rows


def _write_balances(moved: dict[int, Decimal], before: dict[int, Decimal]) -> int:
    """Set each user's new balance where it still is the one read under the lock: one statement.
    PostgreSQL, several users: `UPDATE … FROM (VALUES …)` (a CASE with a branch per user costs
    quadratic work to build and to run); otherwise the ORM. Returns the rows updated."""
    if not moved:
        return 0
    if len(moved) == 1:
        ((pk, value),) = moved.items()
        return User.objects.filter(pk=pk, balance=before[pk]).update(balance=value)
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s::bigint, %s::numeric, %s::numeric)"] * len(moved))
        params = [p for pk, value in moved.items() for p in (pk, before[pk], value)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {User._meta.db_table} AS u SET balance = v.new "  # noqa: S608 - our names
                f"FROM (VALUES {values}) AS v(id, old, new) WHERE u.id = v.id AND u.balance = v.old",
                params,
            )
            return cursor.rowcount
    unchanged = reduce(operator.or_, (Q(pk=pk, balance=before[pk]) for pk in moved))
    whens = [When(pk=pk, then=Value(v)) for pk, v in moved.items()]
    value = Case(*whens, output_field=DecimalField(max_digits=12, decimal_places=2))
    return User.objects.filter(unchanged).update(balance=value)


def _count_changes(counted: list[tuple[str, Decimal]]) -> None:
    """The ledger's metrics, per change as each is committed."""
    for transaction_type, amount in counted:
        znc_balance_changes_total.labels(operation=transaction_type.lower()).inc()
        if transaction_type in REVENUE_TYPES:  # the same rows as currency.selectors.sales
            znc_revenue_total.inc(float(-amount))


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
