"""Ledger descriptions of auto-renewals: a `token:<id>` PURCHASE that has a `TokenRenewal`
(registered above the tokens renderer, so it wins for those rows)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from currency.models import Transaction, TransactionType
from renewals.models import TokenRenewal
from tokens.labels import duration_label


def render(rows: list[Transaction]) -> dict[int, str]:
    purchases = [row.pk for row in rows if row.type == TransactionType.PURCHASE]
    if not purchases:
        return {}
    renewals = TokenRenewal.objects.filter(transaction_id__in=purchases).select_related("token")
    return {
        renewal.transaction_id: _("Auto-renewal of token %(prefix)s… (%(duration)s)")
        % {"prefix": renewal.token.prefix, "duration": duration_label(renewal.token.duration_hours)}
        for renewal in renewals.only("transaction_id", "token__prefix", "token__duration_hours")
    }
