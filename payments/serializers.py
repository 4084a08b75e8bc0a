from django.conf import settings
from rest_framework import serializers

from payments.models import Currency, ExchangeRate, Payment
from zenzefi.amounts import AmountField
from zenzefi.fields import StrictJSONMixin


class PaymentCreateSerializer(StrictJSONMixin, serializers.Serializer):
    amount = AmountField(
        max_digits=14,
        decimal_places=2,
        help_text=(
            f"In `currency`; the ZNC amount must be {settings.TOPUP_MIN_AMOUNT}..{settings.TOPUP_MAX_AMOUNT}."
        ),
    )
    currency = serializers.ChoiceField(choices=Currency.choices, default=Currency.ZNC)

    def to_internal_value(self, data):
        if isinstance(data, dict) and isinstance(data.get("currency"), str):
            data = {**data, "currency": data["currency"].strip().upper()}
        return super().to_internal_value(data)


class PaymentSerializer(serializers.ModelSerializer):
    payment_id = serializers.IntegerField(source="pk", read_only=True)

    class Meta:
        model = Payment
        fields = [
            "payment_id",
            "status",
            "checkout_url",
            "provider",
            "amount",
            "currency",
            "original_amount",
            "exchange_rate",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields


class CallbackResultSerializer(serializers.Serializer):
    payment_id = serializers.IntegerField()
    status = serializers.CharField()
    outcome = serializers.CharField()


class ExchangeRateSerializer(serializers.ModelSerializer):
    currency = serializers.CharField(read_only=True, help_text="RUB, USD or EUR.")

    class Meta:
        model = ExchangeRate
        fields = ["currency", "rate", "valid_from"]
        read_only_fields = fields
