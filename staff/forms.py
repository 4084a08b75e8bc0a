from django import forms
from django.utils.translation import gettext_lazy as _

from currency.services import ADJUSTMENT_LIMIT, ADJUSTMENT_REASON_MAX_LENGTH
from zenzefi.amounts import AmountFormField


class BalanceAdjustmentForm(forms.Form):
    """Staff balance adjustment: a signed amount and a mandatory reason. Parsed here; the rules
    (not zero, the limit, the reason) are `currency.services.balance_adjust`'s."""

    amount = AmountFormField(
        max_digits=12,
        decimal_places=2,
        min_value=-ADJUSTMENT_LIMIT,
        max_value=ADJUSTMENT_LIMIT,
        label=_("Amount, ZNC"),
        help_text=_("Positive credits the user, negative debits. Two decimals at most."),
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=ADJUSTMENT_REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 3})
    )
