from django.conf import settings
from rest_framework import serializers

from gifts.models import GiftCode
from tokens.models import Scope
from tokens.serializers import DurationHoursField, PurchasedTokenSerializer
from zenzefi.fields import StrictJSONMixin


class GiftPurchaseSerializer(StrictJSONMixin, serializers.Serializer):
    duration_hours = DurationHoursField(help_text="One of the priced token durations.")
    scope = serializers.ChoiceField(choices=Scope.choices, default=Scope.FULL)

    def validate_duration_hours(self, value: int) -> int:
        if value not in settings.TOKEN_PRICES:
            allowed = ", ".join(str(h) for h in sorted(settings.TOKEN_PRICES))
            raise serializers.ValidationError(f"Must be one of {allowed}.")
        return value


class GiftRedeemSerializer(StrictJSONMixin, serializers.Serializer):
    code = serializers.CharField(max_length=64, trim_whitespace=True)


class GiftSerializer(serializers.ModelSerializer):
    """A gift as listed: its prefix, never the code. `role` says whether you bought or redeemed it."""

    status = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    buyer = serializers.CharField(source="buyer.username", read_only=True)
    redeemed_by = serializers.CharField(
        source="redeemed_by.username", read_only=True, default=None, allow_null=True
    )
    token_id = serializers.IntegerField(read_only=True, default=None, allow_null=True)

    class Meta:
        model = GiftCode
        fields = [
            "id",
            "prefix",
            "duration_hours",
            "scope",
            "price",
            "status",
            "role",
            "buyer",
            "redeemed_by",
            "token_id",
            "created_at",
            "expires_at",
            "redeemed_at",
        ]
        read_only_fields = fields

    def get_status(self, obj) -> str:
        return obj.status()

    def get_role(self, obj) -> str:
        user = self.context.get("user")
        if user is not None and obj.redeemed_by_id == user.pk and obj.buyer_id != user.pk:
            return "redeemed"
        return "bought"


class PurchasedGiftSerializer(GiftSerializer):
    """The purchase answer: the only time the `code` is ever shown."""

    code = serializers.SerializerMethodField()
    balance = serializers.SerializerMethodField()

    class Meta(GiftSerializer.Meta):
        fields = [*GiftSerializer.Meta.fields, "code", "balance"]
        read_only_fields = fields

    def get_code(self, obj) -> str | None:
        return self.context.get("code")

    def get_balance(self, obj) -> str:
        return f"{obj.purchase.balance_after:.2f}"


class RedeemedGiftSerializer(serializers.Serializer):
    gift = GiftSerializer()
    token = PurchasedTokenSerializer()
