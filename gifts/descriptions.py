"""Ledger descriptions of bought gift codes (`gift:<id>`)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from currency.descriptions import reference_ids
from currency.models import Transaction
from gifts.models import GiftCode
from tokens.labels import duration_label, scope_label


def render(rows: list[Transaction]) -> dict[int, str]:
    ids = reference_ids(rows)
    gifts = GiftCode.objects.only("pk", "prefix", "duration_hours", "scope").in_bulk(set(ids.values()))
    texts = {}
    for row in rows:
        gift = gifts.get(ids.get(row.pk))
        if gift is not None:
            texts[row.pk] = _("Gift code %(prefix)s… (%(duration)s, %(scope)s)") % {
                "prefix": gift.prefix,
                "duration": duration_label(gift.duration_hours),
                "scope": scope_label(gift.scope),
            }
    return texts
