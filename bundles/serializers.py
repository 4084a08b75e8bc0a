from collections.abc import Mapping
from decimal import Decimal

from django.conf import settings
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from bundles.models import TokenBundle
from bundles.pricing import MAX_DISCOUNT, MAX_TOKEN_COUNT
from tokens.models import Scope
from tokens.serializers import AccessTokenSerializer, DurationHoursField
from zenzefi.fields import StrictJSONMixin

DERIVED_PRICE_FIELDS = ("base_price", "total_price", "savings", "price_per_token")


def _money():
    return serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)


class TokenBundleSerializer(serializers.ModelSerializer):
    """A bundle as shown: its prices derived from the token prices and the discount."""

    discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2, read_only=True)
    base_price = _money()
    total_price = _money()
    savings = _money()
    price_per_token = _money()
    # The reader's language (Accept-Language): the Russian texts where written, else English.
    name = serializers.CharField(source="display_name", read_only=True)
    description = serializers.CharField(source="display_description", read_only=True)

    class Meta:
        model = TokenBundle
        fields = [
            "id",
            "name",
            "description",
            "token_count",
            "duration_hours",
            "scope",
            "discount_percent",
            "is_active",
            "created_at",
            *DERIVED_PRICE_FIELDS,
        ]
        read_only_fields = fields


class TokenBundleWriteSerializer(StrictJSONMixin, serializers.Serializer):
    """Staff input for create (all required fields) and PATCH (`partial=True`). Prices are derived:
    sending `base_price`, `total_price`, `savings` or `price_per_token` is a 400."""

    name = serializers.CharField(
        max_length=100,
        validators=[UniqueValidator(TokenBundle.objects.all(), message="A bundle with this name exists.")],
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    name_ru = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text="The name in Russian."
    )
    description_ru = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="The description in Russian."
    )
    token_count = serializers.IntegerField(min_value=1, max_value=MAX_TOKEN_COUNT)
    duration_hours = DurationHoursField(
        help_text="One of the priced durations: 1, 12, 24, 168, 720 (TOKEN_PRICE_* settings)."
    )
    scope = serializers.ChoiceField(choices=Scope.choices, default=Scope.FULL)
    discount_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=MAX_DISCOUNT, default=Decimal("0")
    )
    is_active = serializers.BooleanField(default=True)

    def __init__(self, *args, instance_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if instance_id is not None:  # PATCH: the bundle may keep its own name
            name = self.fields["name"]
            name.validators = [v for v in name.validators if not isinstance(v, UniqueValidator)] + [
                UniqueValidator(
                    TokenBundle.objects.exclude(pk=instance_id), message="A bundle with this name exists."
                )
            ]

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            typed = [name for name in DERIVED_PRICE_FIELDS if name in data]
            if typed:
                raise serializers.ValidationError(
                    {
                        name: ["Derived from the token prices and the discount; it cannot be set."]
                        for name in typed
                    }
                )
        return super().to_internal_value(data)

    def validate_duration_hours(self, value: int) -> int:
        if value not in settings.TOKEN_PRICES:
            allowed = ", ".join(str(h) for h in sorted(settings.TOKEN_PRICES))
            raise serializers.ValidationError(f"Must be one of {allowed}.")
        return value


class BundleTokenSerializer(AccessTokenSerializer):
    """A token bought in a bundle: the only time its plaintext `token` is ever shown."""

    token = serializers.SerializerMethodField()

    class Meta(AccessTokenSerializer.Meta):
        fields = ["token", *AccessTokenSerializer.Meta.fields, "bundle_purchase"]
        read_only_fields = fields

    def get_token(self, obj) -> str | None:
        return self.context["plaintexts"][obj.pk]


class BundlePurchaseResultSerializer(serializers.Serializer):
    purchase_id = serializers.CharField()
    bundle = TokenBundleSerializer()
    tokens = BundleTokenSerializer(many=True)
    total_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    balance = serializers.DecimalField(max_digits=12, decimal_places=2)
