from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from renewals.serializers import AutoRenewPreferenceSerializer, TokenAutoRenewSerializer
from renewals.services import auto_renew_min_balance_set, token_auto_renew_set
from tokens.api import TokenRevokeView
from tokens.serializers import AccessTokenSerializer
from zenzefi.schema import api_errors


class AutoRenewPreferenceView(APIView):
    """Your auto-renewal preference: the minimum balance auto-renewal must leave."""

    @extend_schema(responses={200: AutoRenewPreferenceSerializer})
    def get(self, request):
        request.user.refresh_from_db(fields=["auto_renew_min_balance"])
        return Response({"auto_renew_min_balance": f"{request.user.auto_renew_min_balance:.2f}"})

    @extend_schema(
        request=AutoRenewPreferenceSerializer,
        responses={200: AutoRenewPreferenceSerializer, **api_errors({400: ["invalid_amount"]})},
        examples=[
            OpenApiExample("Keep 20 ZNC", value={"auto_renew_min_balance": "20.00"}, request_only=True)
        ],
    )
    def patch(self, request):
        serializer = AutoRenewPreferenceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = auto_renew_min_balance_set(
            user=request.user, amount=serializer.validated_data["auto_renew_min_balance"], request=request
        )
        return Response({"auto_renew_min_balance": f"{user.auto_renew_min_balance:.2f}"})


class TokenDetailView(TokenRevokeView):
    """DELETE: revoke one of your tokens; the answer states the refund (cost × unused / total).
    PATCH `{auto_renew}`: switch the token's auto-renewal on or off."""

    # One address, two apps: DELETE is the tokens app's (TokenRevokeView), PATCH `{auto_renew}` the
    # renewals app's, which sits above tokens (docs/architecture.md "Layers"); renewals/urls.py
    # routes tokens/<id> here under its name "tokens-revoke".

    @extend_schema(
        request=TokenAutoRenewSerializer,
        responses={
            200: AccessTokenSerializer,
            **api_errors({404: ["token_not_found"], 409: ["token_not_usable"]}),
        },
        examples=[OpenApiExample("Renew automatically", value={"auto_renew": True}, request_only=True)],
    )
    def patch(self, request, token_id: int):
        serializer = TokenAutoRenewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = token_auto_renew_set(
            user=request.user,
            token_id=token_id,
            auto_renew=serializer.validated_data["auto_renew"],
            request=request,
        )
        return Response(AccessTokenSerializer(token).data)
