from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password
from rest_framework_simplejwt.views import TokenRefreshView

from accounts import services
from accounts.models import User
from accounts.ratelimits import ip_limit_check, ip_limit_count_attempt, ip_limit_count_failure
from accounts.serializers import (
    LoginSerializer,
    MeUpdateSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from zenzefi.errors import InvalidInput
from zenzefi.representation import represent
from zenzefi.schema import api_errors


def registration_language(request) -> str:
    """A new API account's language when the body names none: the first of our languages in
    `Accept-Language`, else LANGUAGE_CODE (the API's own messages fall back to English instead)."""
    for code, _quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")):
        if code == "*":
            continue
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


class RegisterView(APIView):
    """Create an account. Limited per client IP (AUTH_RATE_LIMIT)."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: UserSerializer,
            **api_errors({400: ["invalid_referral_code", "duplicate_user"], 429: ["rate_limited"]}),
        },
        parameters=[
            OpenApiParameter(
                "referral_code", str, required=False, description="Or `referral_code` in the body."
            )
        ],
        examples=[
            OpenApiExample(
                "Register",
                value={
                    "email": "anna@example.com",
                    "username": "anna",
                    "password": "a-long-Passphrase-7",
                    "full_name": "Anna Petrova",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        ip_limit_count_attempt(request, "auth.register")
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = services.user_register(
            email=data["email"],
            username=data["username"],
            password=data["password"],
            full_name=data.get("full_name", ""),
            referral_code=data.get("referral_code") or request.query_params.get("referral_code"),
            language=data.get("language") or registration_language(request),
            request=request,
        )
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    """Username or email + password → `{access, refresh}`. Failed attempts are limited per IP."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        request=LoginSerializer,
        responses={
            200: TokenPairSerializer,
            **api_errors({401: ["invalid_credentials"], 429: ["rate_limited"]}),
        },
        examples=[
            OpenApiExample(
                "Log in", value={"username": "anna", "password": "a-long-Passphrase-7"}, request_only=True
            )
        ],
    )
    def post(self, request):
        ip_limit_check(request, "auth.login")
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = services.user_authenticate(
                identifier=serializer.validated_data["identifier"],
                password=serializer.validated_data["password"],
                request=request,
            )
        except services.InvalidCredentials:
            ip_limit_count_failure(request, "auth.login")
            raise
        return Response(services.jwt_pair_for(user))


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserSerializer})
    def get(self, request):
        return Response(represent(UserSerializer, request.user))

    @extend_schema(
        request=MeUpdateSerializer,
        responses={200: UserSerializer, **api_errors({400: ["unknown_field", "no_changes"]})},
        examples=[OpenApiExample("Switch to English", value={"language": "en"}, request_only=True)],
    )
    def patch(self, request):
        """Change `full_name`, `language` and the `notify_*` email preferences. Any other field
        is a 400 (`unknown_field`) and nothing changes; `{}` is a 400 (`no_changes`)."""
        data = request.data
        if not hasattr(data, "keys"):
            raise InvalidInput("Expected a JSON object.", code="invalid")
        allowed = list(MeUpdateSerializer().fields)
        unknown = sorted(set(data.keys()) - set(allowed))
        if unknown:
            raise InvalidInput(
                f"{unknown[0]}: cannot be changed here (allowed: {', '.join(allowed)}).",
                code="unknown_field",
                extra={"fields": unknown},
            )
        if not data:
            raise InvalidInput(f"Nothing to change: give one of {', '.join(allowed)}.", code="no_changes")
        serializer = MeUpdateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        user = services.user_self_update(user=request.user, request=request, **serializer.validated_data)
        return Response(UserSerializer(user).data)


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh (rotating: the answer carries a new `refresh`, the old one is
    blacklisted), plus what 5.5's serializer does not check on a refresh JWT: the owner exists
    and is active, and the JWT was issued for the current password (the revoke claim)."""

    def validate(self, attrs):
        try:
            refresh = RefreshToken(attrs["refresh"])
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        user = User.objects.filter(pk=refresh.payload.get(jwt_settings.USER_ID_CLAIM)).first()
        if user is None or not user.is_active:
            raise AuthenticationFailed(
                "No active account found for the given token.", code="no_active_account"
            )
        if refresh.payload.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(
                "The password has changed since this token was issued.", code="password_changed"
            )
        return super().validate(attrs)


@extend_schema(
    responses=api_errors(
        {
            400: ["invalid"],
            401: ["token_not_valid", "no_active_account", "password_changed", "authentication_failed"],
        }
    ),
    examples=[OpenApiExample("Refresh", value={"refresh": "eyJhbGciOi..."}, request_only=True)],
)
class RefreshView(TokenRefreshView):
    """A refresh JWT → `{access, refresh}`. Each refresh JWT works once; all of a user's stop
    working when their password changes or they are deactivated."""

    serializer_class = RefreshSerializer
