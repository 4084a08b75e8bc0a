"""Ledger descriptions of token purchases and refunds (`token:<id>`), see `currency.descriptions`."""

from __future__ import annotations

from django.utils.translation import gettext as _

from currency.descriptions import reference_ids
from currency.models import Transaction, TransactionType
from tokens.labels import duration_label, scope_label
from tokens.models import AccessToken


def render(rows: list[Transaction]) -> dict[int, str]:
    ids = reference_ids(rows)
    tokens = AccessToken.objects.only("pk", "prefix", "duration_hours", "scope").in_bulk(set(ids.values()))
    texts = {}
    for row in rows:
        token = tokens.get(ids.get(row.pk))
        if token is None:
            continue
        if row.type == TransactionType.PURCHASE:
            texts[row.pk] = _("Access token %(duration)s (%(scope)s)") % {
                "duration": duration_label(token.duration_hours),
                "scope": scope_label(token.scope),
            }
        elif row.type == TransactionType.REFUND:
            texts[row.pk] = _("Refund for token %(prefix)s…") % {"prefix": token.prefix}
    return texts
