from django.conf import settings
from rest_framework import serializers

from currency.models import Transaction
from zenzefi.amounts import AmountField
from zenzefi.fields import StrictJSONMixin


class TransactionSerializer(serializers.ModelSerializer):
    transaction_type = serializers.CharField(source="type", read_only=True)

    class Meta:
        model = Transaction
        fields = [
            "id",
            "amount",
            "balance_after",
            "type",
            "transaction_type",
            "description",
            "reference",
            "created_at",
        ]
        read_only_fields = fields


class TopUpAmountSerializer(StrictJSONMixin, serializers.Serializer):
    amount = AmountField(
        max_digits=12,
        decimal_places=2,
        min_value=settings.TOPUP_MIN_AMOUNT,
        max_value=settings.TOPUP_MAX_AMOUNT,
    )


class BalanceSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=12, decimal_places=2)


class MockPurchaseResultSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=12, decimal_places=2)
    transaction = TransactionSerializer()
