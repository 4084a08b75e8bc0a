from rest_framework import serializers

from zenzefi.amounts import AmountField


class TokenAutoRenewSerializer(serializers.Serializer):
    auto_renew = serializers.BooleanField()


class AutoRenewPreferenceSerializer(serializers.Serializer):
    auto_renew_min_balance = AmountField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        help_text="Auto-renewal only renews while the balance after paying stays at or above this.",
    )
