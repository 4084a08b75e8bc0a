"""Filters for the customer pages: money, durations and labels in the active language."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils import formats
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

register = template.Library()

TRANSACTION_TYPE_LABELS = {
    "DEPOSIT": _("Top-up"),
    "PURCHASE": _("Purchase"),
    "REFUND": _("Refund"),
    "REFERRAL_BONUS": _("Referral bonus"),
    "ADJUSTMENT": _("Adjustment"),
    "GIFT": _("Gift"),
}
SCOPE_LABELS = {"full": _("Full access"), "certificates_only": _("Certificates only")}
TOKEN_STATE_LABELS = {
    "not_activated": _("Not activated yet"),
    "active": _("Active"),
    "expired": _("Expired"),
    "revoked": _("Revoked"),
}
TIER_LABELS = {"free": _("Free"), "premium": _("Premium"), "enterprise": _("Enterprise")}


@register.filter
def money(value) -> str:
    """A ZNC amount with two decimals and the locale's separators (`1 234,50` / `1,234.50`)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return ""
    return formats.number_format(amount, 2, use_l10n=True, force_grouping=True)


@register.filter
def signed_money(value) -> str:
    amount = Decimal(str(value))
    return ("+" if amount > 0 else "−" if amount < 0 else "") + money(abs(amount))


@register.filter
def duration(hours) -> str:
    """1 h … 720 h as `24 hours` / `7 days` (`24 часа` / `7 дней`)."""
    hours = int(hours)
    if hours >= 48 and hours % 24 == 0:
        days = hours // 24
        return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}
    return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}


@register.filter
def transaction_type(code) -> str:
    return str(TRANSACTION_TYPE_LABELS.get(code, code))


@register.filter
def scope(code) -> str:
    return str(SCOPE_LABELS.get(code, code))


@register.filter
def token_state(code) -> str:
    return str(TOKEN_STATE_LABELS.get(code, code))


@register.filter
def tier(code) -> str:
    return str(TIER_LABELS.get(code, code))
