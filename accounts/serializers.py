from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import Language, User
from zenzefi.fields import StrictJSONMixin
from zenzefi.representation import FlatReadMixin


class RegisterSerializer(StrictJSONMixin, serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        min_length=3,
        max_length=150,
        error_messages={"invalid": "Letters, digits and @/./+/-/_ only."},
    )
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    full_name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    referral_code = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    language = serializers.ChoiceField(choices=Language.choices, required=False)

    def validate_email(self, value: str) -> str:
        value = value.strip().lower()
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("A user with this email already exists.")
        return value

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("A user with this username already exists.")
        return value

    def validate(self, attrs):
        candidate = User(
            username=attrs.get("username", ""),
            email=attrs.get("email", ""),
            full_name=attrs.get("full_name", ""),
        )
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
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
