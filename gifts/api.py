from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from gifts import selectors, services
from gifts.serializers import (
    GiftPurchaseSerializer,
    GiftRedeemSerializer,
    GiftSerializer,
    PurchasedGiftSerializer,
    RedeemedGiftSerializer,
)
from idempotency.schema import IDEMPOTENCY_HEADER
from idempotency.services import run_idempotent
from tokens.serializers import PurchasedTokenSerializer
from zenzefi.schema import api_errors


class GiftListView(ListAPIView):
    """Gift codes you bought or redeemed (prefix only; a code is shown once, at purchase)."""

    serializer_class = GiftSerializer
    filter_backends = []

    def get_queryset(self):
        return selectors.gift_list(user=self.request.user)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "user": self.request.user}


class GiftPurchaseView(APIView):
    """Buy a gift code for a token of `duration_hours` and `scope`, charged now (a GIFT row).
    The `code` is in this answer only (a replayed Idempotency-Key answer shows `code: null`)."""

    @extend_schema(
        request=GiftPurchaseSerializer,
        responses={
            201: PurchasedGiftSerializer,
            **api_errors({402: ["insufficient_funds", "balance_conflict"]}),
        },
        parameters=[IDEMPOTENCY_HEADER],
        examples=[
            OpenApiExample("A 24 h gift", value={"duration_hours": 24, "scope": "full"}, request_only=True)
        ],
    )
    def post(self, request):
        serializer = GiftPurchaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def buy():
            bought = services.gift_purchase(
                buyer=request.user,
                duration_hours=data["duration_hours"],
                scope=data["scope"],
                request=request,
            )
            body = PurchasedGiftSerializer(
                bought.gift, context={"code": bought.code, "user": request.user}
            ).data
            return Response(body, status=status.HTTP_201_CREATED)

        return run_idempotent(
            request=request, scope="gifts.purchase", handler=buy, redact=frozenset({"code"})
        )


class GiftRedeemView(APIView):
    """Redeem a gift code into a token on your account (the token's plaintext is shown once).
    Unknown, expired or already redeemed codes: 404 `gift_code_invalid`."""

    @extend_schema(
        request=GiftRedeemSerializer,
        responses={201: RedeemedGiftSerializer, **api_errors({404: ["gift_code_invalid"]})},
        examples=[OpenApiExample("Redeem", value={"code": "GIFT-3kq9..."}, request_only=True)],
    )
    def post(self, request):
        serializer = GiftRedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        redeemed = services.gift_redeem(
            user=request.user, code=serializer.validated_data["code"], request=request
        )
        request.user.refresh_from_db(fields=["balance"])
        token = redeemed.issued.token
        token.user = request.user
        return Response(
            {
                "gift": GiftSerializer(redeemed.gift, context={"user": request.user}).data,
                "token": PurchasedTokenSerializer(
                    token, context={"plaintext": redeemed.issued.plaintext}
                ).data,
            },
            status=status.HTTP_201_CREATED,
        )
