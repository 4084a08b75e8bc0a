"""Ledger descriptions of bundle purchases (`bundle:<id>:<purchase>`): the bundle's name in the
reader's language and what the purchase created (its tokens), see `currency.descriptions`."""

from __future__ import annotations

from django.db.models import Count, Max, Min
from django.utils.translation import gettext as _

from bundles.models import TokenBundle
from currency.descriptions import reference_ids, reference_parts
from currency.models import Transaction, TransactionType
from tokens.labels import duration_label, scope_label
from tokens.models import AccessToken


def render(rows: list[Transaction]) -> dict[int, str]:
    rows = [row for row in rows if row.type == TransactionType.PURCHASE]
    ids = reference_ids(rows)
    bundles = TokenBundle.objects.in_bulk(set(ids.values()))
    purchases = {row.pk: parts[1] for row in rows if len(parts := reference_parts(row.reference)) > 1}
    issued = {
        item["bundle_purchase"]: item
        for item in AccessToken.objects.filter(bundle_purchase__in=set(purchases.values()))
        .values("bundle_purchase")
        .annotate(n=Count("pk"), hours=Max("duration_hours"), scope=Min("scope"))
    }
    texts = {}
    for row in rows:
        bundle = bundles.get(ids.get(row.pk))
        if bundle is None:
            continue
        made = issued.get(purchases.get(row.pk), {})
        texts[row.pk] = _("Bundle %(name)s: %(count)d × %(duration)s (%(scope)s)") % {
            "name": bundle.display_name,
            "count": made.get("n") or bundle.token_count,
            "duration": duration_label(made.get("hours") or bundle.duration_hours),
            "scope": scope_label(made.get("scope") or bundle.scope),
        }
    return texts
