"""Forms of the token pages. Prices come from settings.TOKEN_PRICES (one source of truth)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from accounts.templatetags.pages import SCOPE_LABELS, duration, money
from tokens.models import Scope


def duration_choices() -> list[tuple[str, str]]:
    return [
        (str(hours), f"{duration(hours)} — {money(price)} ZNC")
        for hours, price in sorted(settings.TOKEN_PRICES.items())
    ]


class TokenBuyForm(forms.Form):
    duration_hours = forms.TypedChoiceField(
        label=_("Duration"), coerce=int, widget=forms.RadioSelect, choices=duration_choices
    )
    scope = forms.ChoiceField(
        label=_("Scope"),
        widget=forms.RadioSelect,
        choices=[(value, SCOPE_LABELS[value]) for value in Scope.values],
        initial=Scope.FULL,
    )
