from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet, Sum

from currency.models import Transaction
from zenzefi.money import to_money


def transaction_list(*, user, transaction_type: str | None = None) -> QuerySet[Transaction]:
    qs = Transaction.objects.filter(user=user).order_by("-created_at", "-id")
    if transaction_type:
        qs = qs.filter(type=transaction_type)
    return qs


def ledger_sum(*, user) -> Decimal:
    """Sum of the user's ledger (quantized: SQLite sums decimals as floats)."""
    total = Transaction.objects.filter(user=user).aggregate(s=Sum("amount"))["s"]
    return to_money(str(total)) if total is not None else Decimal("0.00")
