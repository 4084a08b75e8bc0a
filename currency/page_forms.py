"""Forms of the ledger's pages (the top-up form is payments.forms.TopUpForm)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.templatetags.pages import TRANSACTION_TYPE_LABELS


class TransactionFilterForm(forms.Form):
    type = forms.ChoiceField(
        label=_("Type"),
        required=False,
        choices=[("", _("All types")), *TRANSACTION_TYPE_LABELS.items()],
    )
