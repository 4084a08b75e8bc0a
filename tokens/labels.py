"""Token durations and scopes as words in the active language (pages, ledger descriptions)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy, ngettext

SCOPE_LABELS = {"full": gettext_lazy("Full access"), "certificates_only": gettext_lazy("Certificates only")}


def duration_label(hours: int) -> str:
    """1 h … 720 h as `24 hours` / `7 days` (`24 часа` / `7 дней`)."""
    hours = int(hours)
    if hours >= 48 and hours % 24 == 0:
        days = hours // 24
        return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}
    return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}


def scope_label(code: str) -> str:
    return str(SCOPE_LABELS.get(code, code))
