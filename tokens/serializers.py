from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tokens.models import AccessToken, Scope
from zenzefi.fields import StrictJSONMixin


@extend_schema_field({"type": "integer", "enum": sorted(settings.TOKEN_PRICES)})
class DurationHoursField(serializers.IntegerField):
    """A priced token duration in hours; the schema lists them (TOKEN_PRICE_* settings)."""


class TokenPurchaseSerializer(StrictJSONMixin, serializers.Serializer):
    duration_hours = DurationHoursField(
        help_text="One of the priced durations: 1, 12, 24, 168, 720 (TOKEN_PRICE_* settings)."
    )
    scope = serializers.ChoiceField(choices=Scope.choices, default=Scope.FULL)
    auto_renew = serializers.BooleanField(default=False)

    def validate_duration_hours(self, value: int) -> int:
        if value not in settings.TOKEN_PRICES:
            allowed = ", ".join(str(h) for h in sorted(settings.TOKEN_PRICES))
            raise serializers.ValidationError(f"Must be one of {allowed}.")
        return value


class AccessTokenSerializer(serializers.ModelSerializer):
    """A token as listed: prefix only, never the plaintext."""

    status = serializers.SerializerMethodField()
    is_active = serializers.SerializerMethodField()
    seconds_left = serializers.SerializerMethodField()

    class Meta:
        model = AccessToken
        fields = [
            "id",
            "prefix",
            "duration_hours",
            "scope",
            "cost",
            "created_at",
            "activated_at",
            "expires_at",
            "revoked_at",
            "refund_amount",
            "auto_renew",
            "status",
            "is_active",
            "seconds_left",
        ]
        read_only_fields = fields

    def get_status(self, obj) -> str:
        return obj.state()

    def get_is_active(self, obj) -> bool:
        return obj.state() in ("active", "not_activated")

    def get_seconds_left(self, obj) -> int | None:
        left = obj.time_left()
        return int(left.total_seconds()) if left is not None else None


class PurchasedTokenSerializer(AccessTokenSerializer):
    """The purchase answer: the only time the plaintext `token` is ever shown."""

    token = serializers.SerializerMethodField()
    balance = serializers.SerializerMethodField()

    class Meta(AccessTokenSerializer.Meta):
        fields = ["token", *AccessTokenSerializer.Meta.fields, "balance"]
        read_only_fields = fields

    def get_token(self, obj) -> str | None:
        return self.context["plaintext"]

    def get_balance(self, obj) -> str:
        return f"{obj.user.balance:.2f}"


class RevokeResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    revoked_at = serializers.DateTimeField()
    refund = serializers.DecimalField(max_digits=12, decimal_places=2)
    balance = serializers.DecimalField(max_digits=12, decimal_places=2)
