from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from idempotency.schema import IDEMPOTENCY_HEADER
from idempotency.services import run_idempotent
from tokens import selectors, services
from tokens.serializers import (
    AccessTokenSerializer,
    PurchasedTokenSerializer,
    RevokeResultSerializer,
    TokenPurchaseSerializer,
)
from zenzefi.params import parse_bool
from zenzefi.schema import api_errors


class TokenPurchaseView(APIView):
    """Buy one access token. The plaintext `token` is in this answer only (a replayed
    Idempotency-Key answer shows `token: null`: it is never stored)."""

    @extend_schema(
        request=TokenPurchaseSerializer,
        responses={
            201: PurchasedTokenSerializer,
            **api_errors({402: ["insufficient_funds", "balance_conflict"]}),
        },
        parameters=[IDEMPOTENCY_HEADER],
        examples=[
            OpenApiExample(
                "24 h, full access", value={"duration_hours": 24, "scope": "full"}, request_only=True
            )
        ],
    )
    def post(self, request):
        serializer = TokenPurchaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def buy():
            issued = services.token_purchase(
                user=request.user,
                duration_hours=data["duration_hours"],
                scope=data["scope"],
                auto_renew=data["auto_renew"],
                request=request,
            )
            body = PurchasedTokenSerializer(issued.token, context={"plaintext": issued.plaintext}).data
            return Response(body, status=status.HTTP_201_CREATED)

        return run_idempotent(
            request=request, scope="tokens.purchase", handler=buy, redact=frozenset({"token"})
        )


class MyTokensView(ListAPIView):
    serializer_class = AccessTokenSerializer
    filter_backends = []

    def get_queryset(self):
        active_only = parse_bool(self.request.query_params.get("active_only"), "active_only")
        return selectors.token_list(user=self.request.user, active_only=active_only)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "active_only",
                bool,
                required=False,
                description="Only active tokens: activated, not expired, not revoked.",
            )
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class TokenRevokeView(APIView):
    """DELETE: revoke one of your tokens; the answer states the refund (cost × unused / total).
    PATCH `{auto_renew}`: switch the token's auto-renewal on or off."""

    # PATCH `{auto_renew}` is the renewals app's (renewals.api.TokenDetailView adds it and
    # renewals/urls.py routes tokens/<id>): tokens sit below renewals (docs/architecture.md "Layers").

    @extend_schema(
        responses={
            200: RevokeResultSerializer,
            **api_errors({404: ["token_not_found"], 409: ["already_revoked"]}),
        }
    )
    def delete(self, request, token_id: int):
        token = services.token_revoke(
            token_id=token_id, owner=request.user, actor=request.user, request=request
        )
        request.user.refresh_from_db(fields=["balance"])
        return Response(
            {
                "id": token.pk,
                "revoked_at": token.revoked_at,
                "refund": f"{token.refund_amount:.2f}",
                "balance": f"{request.user.balance:.2f}",
            }
        )
