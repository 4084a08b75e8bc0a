from rest_framework import serializers

from zenzefi.amounts import AmountField
from zenzefi.fields import StrictJSONMixin


class TokenAutoRenewSerializer(StrictJSONMixin, serializers.Serializer):
    whole_body_patch = True  # PATCH tokens/{id} requires `auto_renew` (zenzefi.schema)

    auto_renew = serializers.BooleanField()


class AutoRenewPreferenceSerializer(StrictJSONMixin, serializers.Serializer):
    whole_body_patch = True  # PATCH users/me/auto-renewal requires the field (zenzefi.schema)

    auto_renew_min_balance = AmountField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        help_text="Auto-renewal only renews while the balance after paying stays at or above this.",
    )
