from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum

from currency.models import REVENUE_TYPES, Transaction
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


def sales(*, start: datetime, end: datetime, trunc=None) -> dict[datetime | None, dict]:
    """THE count of revenue (SPEC §13 `revenue_znc`, the admin dashboard, and the same rows as
    `znc_revenue_total`): what customers spent in [start, end] on tokens, bundles, renewals
    (PURCHASE rows) and gift codes (GIFT rows), before refunds. Per bucket of `created_at`
    (`trunc` = TruncHour/TruncDay in UTC), or one bucket `None` without: `revenue` (Decimal,
    positive) and `purchases` (how many sales: a bundle is one, a gift code is one)."""
    rows = Transaction.objects.filter(type__in=REVENUE_TYPES, created_at__gte=start, created_at__lte=end)
    figures = {"spent": Sum("amount"), "purchases": Count("pk")}
    if trunc is None:
        grouped = [{"bucket": None, **rows.aggregate(**figures)}]
    else:
        grouped = (
            rows.annotate(bucket=trunc("created_at", tzinfo=UTC))
            .values("bucket")
            .annotate(**figures)
            .order_by("bucket")
        )
    return {
        row["bucket"]: {
            # Quantized: SQLite sums decimals as floats.
            "revenue": -to_money(str(row["spent"])) if row["spent"] is not None else Decimal("0.00"),
            "purchases": row["purchases"],
        }
        for row in grouped
    }
