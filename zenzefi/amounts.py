"""One rule for every money amount typed by a person or a client (issue 11 item 7).

An amount is written with ASCII digits, an optional leading minus, and at most one ASCII
decimal point: `12`, `12.5`, `-3.00`. Refused with a 400 (nothing changes): digit separators
(`1_000`), non-ASCII digits (full-width `１２`, Arabic-Indic `١٢`), `NaN`, `Infinity`, exponent
forms (`1e2`, also as a JSON number), signs like `+5`, booleans. Python's Decimal() and
int() accept several of those, so DRF's and Django's DecimalFields do too; these fields do not.

`AmountField` (DRF) and `AmountFormField` (Django forms) are used by every amount input:
mock-purchase, purchase, the staff balance adjustment (API and admin), the top-up page and the
auto-renewal minimum balance.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

PLAIN_AMOUNT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
MESSAGE = _("Enter the amount with digits 0-9 and an optional decimal point, e.g. 150 or 150.00.")


def plain_amount_text(value) -> str | None:
    """The amount's text if it is written plainly (see module doc), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        literal = getattr(value, "literal", None) or repr(value)  # JSONFloat keeps the JSON text
        return literal if PLAIN_AMOUNT.fullmatch(literal) else None
    if isinstance(value, Decimal):
        text = str(value)
        return text if PLAIN_AMOUNT.fullmatch(text) else None
    if isinstance(value, str):
        text = value.strip()
        return text if PLAIN_AMOUNT.fullmatch(text) else None
    return None


class AmountField(serializers.DecimalField):
    """DRF DecimalField that accepts only plainly written amounts."""

    default_error_messages = {"plain_amount": MESSAGE}

    def to_internal_value(self, data):
        if plain_amount_text(data) is None:
            self.fail("plain_amount")
        return super().to_internal_value(data)


class AmountFormField(forms.DecimalField):
    """Django forms DecimalField that accepts only plainly written amounts."""

    def to_python(self, value):
        if value in self.empty_values:
            return super().to_python(value)
        if plain_amount_text(value) is None:
            raise ValidationError(MESSAGE, code="plain_amount")
        return super().to_python(value)
