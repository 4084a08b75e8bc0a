"""Forms and labels of the customer webhook pages. The rules (URL safety, known events, the
endpoint limit) live in webhooks.services; the form only shapes the input."""

from __future__ import annotations

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from webhooks.models import EVENTS, DeliveryStatus

EVENT_LABELS = {
    "token.purchased": _("A token was bought"),
    "token.activated": _("A token was used for the first time"),
    "token.expiring": _("A token expires within 24 hours"),
    "token.expired": _("A token expired"),
    "token.revoked": _("A token was revoked"),
    "token.renewed": _("A token was renewed automatically"),
    "balance.low": _("Your balance is low"),
    "payment.succeeded": _("A payment was received"),
    "referral.bonus": _("You received a referral bonus"),
}

DELIVERY_STATUS_LABELS = {
    DeliveryStatus.PENDING: _("Pending"),
    DeliveryStatus.SENDING: _("Sending"),
    DeliveryStatus.RETRYING: _("Waiting to retry"),
    DeliveryStatus.SUCCEEDED: _("Delivered"),
    DeliveryStatus.FAILED: _("Failed"),
}


def event_choices() -> list[tuple[str, str]]:
    return [
        (event, format_lazy("{} ({})", EVENT_LABELS[event], event) if event in EVENT_LABELS else event)
        for event in EVENTS
    ]


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        label=_("Endpoint URL"),
        max_length=2000,
        assume_scheme="https",
        help_text=_("A public http(s) address of your server that accepts POST requests."),
        widget=forms.URLInput(
            attrs={"placeholder": "https://example.com/hooks/zenzefi", "autocomplete": "off"}
        ),
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=event_choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one event.")},
    )
