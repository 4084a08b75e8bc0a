"""Ledger descriptions of provider top-ups (`payment:<id>`), see `currency.descriptions`."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from currency.descriptions import reference_ids
from currency.models import Transaction
from payments.models import Payment

PROVIDER_LABELS = {"mock": gettext_lazy("test checkout"), "yookassa": "YooKassa"}


def render(rows: list[Transaction]) -> dict[int, str]:
    ids = reference_ids(rows)
    payments = Payment.objects.only("pk", "provider").in_bulk(set(ids.values()))
    texts = {}
    for row in rows:
        payment = payments.get(ids.get(row.pk))
        if payment is not None:
            texts[row.pk] = _("Top-up via %(provider)s (payment #%(id)s)") % {
                "provider": PROVIDER_LABELS.get(payment.provider, payment.provider),
                "id": payment.pk,
            }
    return texts
