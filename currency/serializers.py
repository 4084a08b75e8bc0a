from django.conf import settings
from rest_framework import serializers

from currency.descriptions import describe, description_of
from currency.models import Transaction
from zenzefi.amounts import AmountField
from zenzefi.fields import StrictJSONMixin
from zenzefi.representation import FlatReadMixin


class TransactionListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        rows = list(data.all() if hasattr(data, "all") else data)
        describe(rows)  # one query per kind of reference, not per row
        return super().to_representation(rows)


class TransactionSerializer(FlatReadMixin, serializers.ModelSerializer):
    transaction_type = serializers.CharField(source="type", read_only=True)
    # Rendered now from `type` and `reference`, in the request's language (Accept-Language, else
    # English); the stored English text stays in the ledger.
    description = serializers.SerializerMethodField()

    class Meta:
        list_serializer_class = TransactionListSerializer
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

    def get_description(self, obj) -> str:
        return description_of(obj)


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
