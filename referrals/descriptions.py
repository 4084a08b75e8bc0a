"""Ledger descriptions of referral bonuses (`referral:<referred user id>`)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from accounts.models import User
from currency.descriptions import reference_ids
from currency.models import Transaction


def render(rows: list[Transaction]) -> dict[int, str]:
    ids = reference_ids(rows)
    users = User.objects.only("pk", "username").in_bulk(set(ids.values()))
    return {
        row.pk: _("Referral bonus: first top-up of %(username)s") % {"username": users[ids[row.pk]].username}
        for row in rows
        if ids.get(row.pk) in users
    }
