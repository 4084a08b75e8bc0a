from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts import validators
from accounts.models import Language, User
from zenzefi.fields import StrictJSONMixin
from zenzefi.representation import FlatReadMixin


class RegisterSerializer(StrictJSONMixin, serializers.Serializer):
    """Parses the body; the sign-up rules are accounts.validators' (the sign-up page's too)."""

    email = serializers.EmailField(max_length=validators.EMAIL_MAX_LENGTH)
    username = serializers.CharField(
        min_length=validators.USERNAME_MIN_LENGTH,
        max_length=validators.USERNAME_MAX_LENGTH,
        validators=list(validators.USERNAME_VALIDATORS),
    )
    password = serializers.CharField(
        write_only=True, max_length=validators.PASSWORD_MAX_LENGTH, trim_whitespace=False
    )
    full_name = serializers.CharField(
        max_length=validators.FULL_NAME_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    referral_code = serializers.CharField(
        max_length=validators.REFERRAL_CODE_MAX_LENGTH, required=False, allow_blank=True, allow_null=True
    )
    language = serializers.ChoiceField(choices=Language.choices, required=False)

    def validate(self, attrs):
        try:
            attrs.update(
                validators.signup_validate(
                    email=attrs["email"],
                    username=attrs["username"],
                    password=attrs["password"],
                    full_name=attrs.get("full_name", ""),
                )
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return attrs


class LoginSerializer(StrictJSONMixin, serializers.Serializer):
    username = serializers.CharField(max_length=254, required=False, allow_blank=False)
    email = serializers.CharField(max_length=254, required=False, allow_blank=False)
    password = serializers.CharField(max_length=128, trim_whitespace=False)

    def validate(self, attrs):
        identifier = attrs.get("username") or attrs.get("email")
        if not identifier:
            raise serializers.ValidationError({"username": ["Give a username or an email."]})
        attrs["identifier"] = identifier.strip()
        return attrs


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField()


class UserSerializer(FlatReadMixin, serializers.ModelSerializer):
    referred_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "full_name",
            "balance",
            "referral_code",
            "referred_by",
            "referral_bonus_earned",
            "tier",
            "language",
            "notify_token_expiring",
            "notify_low_balance",
            "notify_renewal",
            "notify_payment",
            "is_active",
            "is_staff",
            "date_joined",
        ]
        read_only_fields = fields


class MeUpdateSerializer(StrictJSONMixin, serializers.Serializer):
    """`PATCH users/me`: the fields a customer may change about themselves, each optional."""

    full_name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    notify_token_expiring = serializers.BooleanField(required=False)
    notify_low_balance = serializers.BooleanField(required=False)
    notify_renewal = serializers.BooleanField(required=False)
    notify_payment = serializers.BooleanField(required=False)
