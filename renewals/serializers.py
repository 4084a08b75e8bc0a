from rest_framework import serializers

from zenzefi.fields import StrictJSONMixin


class TokenAutoRenewSerializer(StrictJSONMixin, serializers.Serializer):
    auto_renew = serializers.BooleanField()


class AutoRenewPreferenceSerializer(StrictJSONMixin, serializers.Serializer):
    auto_renew_min_balance = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        help_text="Auto-renewal only renews while the balance after paying stays at or above this.",
    )
