"""The top-up page's form. Amount limits are checked by currency.services (one rule)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from payments.selectors import rates_current
from zenzefi.amounts import AmountFormField


class TopUpForm(forms.Form):
    amount = AmountFormField(label=_("Amount, ZNC"), max_digits=12, decimal_places=2)
    # Shown only while staff keep exchange rates (payments.ExchangeRate); otherwise ZNC.
    currency = forms.ChoiceField(
        label=_("Pay in"),
        required=False,
        choices=[("ZNC", "ZNC")],
        help_text=_(
            "In RUB, USD or EUR the amount is in that currency, converted to ZNC at the current rate."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        widget = self.fields["amount"].widget
        widget.attrs.update(
            {"min": str(settings.TOPUP_MIN_AMOUNT), "max": str(settings.TOPUP_MAX_AMOUNT), "step": "0.01"}
        )
        self.rates = rates_current()
        currency = self.fields["currency"]
        currency.choices = [("ZNC", "ZNC"), *((r.currency, r.currency) for r in self.rates)]
        if not self.rates:
            currency.widget = forms.HiddenInput()
