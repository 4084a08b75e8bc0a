from django.conf import settings
from django_ratelimit.core import get_usage
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from currency.serializers import MockPurchaseResultSerializer, TopUpAmountSerializer, TransactionSerializer
from idempotency.schema import IDEMPOTENCY_HEADER
from idempotency.services import run_idempotent
from payments import selectors, services
from payments.deposits import deposit_mock
from payments.models import COMPLETE_PERMISSION
from payments.providers import SIGNATURE_HEADER
from payments.serializers import (
    CallbackResultSerializer,
    ExchangeRateSerializer,
    PaymentCreateSerializer,
    PaymentSerializer,
)
from zenzefi.errors import NotFound, RateLimited
from zenzefi.metrics import rate_limit_hits_total
from zenzefi.permissions import StaffPermission
from zenzefi.schema import api_errors


class PaymentCreateView(APIView):
    """Start a top-up: a pending Payment and the provider's checkout URL. `currency` (ZNC by
    default, or RUB/USD/EUR at the current rate). Honours `Idempotency-Key`."""

    @extend_schema(
        request=PaymentCreateSerializer,
        responses={
            201: PaymentSerializer,
            **api_errors(
                {
                    400: ["invalid_amount", "invalid_currency", "no_exchange_rate"],
                    502: ["payment_provider_error"],
                    503: ["topups_unavailable"],
                }
            ),
        },
        parameters=[IDEMPOTENCY_HEADER],
        examples=[OpenApiExample("Top up 500 ZNC", value={"amount": "500.00"}, request_only=True)],
    )
    def post(self, request):
        serializer = PaymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def create(claim):
            payment = services.payment_create(
                user=request.user,
                amount=data["amount"],
                currency=data["currency"],
                request=request,
                claim=claim,
            )
            return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

        # The provider is called outside any transaction: the key's record is claimed first and
        # committed (a concurrent same-key request: 409), a retry resumes the same payment.
        return run_idempotent(
            request=request, scope="currency.purchase", handler=create, outside_transaction=True
        )


class PaymentListView(ListAPIView):
    """Your payments (top-ups), newest first; `skip`, `limit`."""

    serializer_class = PaymentSerializer
    filter_backends = []

    def get_queryset(self):
        return selectors.payment_list(user=self.request.user)


class PaymentDetailView(APIView):
    """One of your payments (a pending one of a real provider is re-checked with the provider)."""

    @extend_schema(
        responses={
            200: PaymentSerializer,
            **api_errors({404: ["payment_not_found"], 502: ["payment_provider_error"]}),
        }
    )
    def get(self, request, payment_id: int):
        payment = selectors.payment_get(user=request.user, payment_id=payment_id)
        payment = (
            services.payment_refresh(payment=payment, request=request)
            if payment.provider != "mock"
            else payment
        )
        return Response(PaymentSerializer(payment).data)


class PaymentSimulateView(APIView):
    """Staff: complete a pending mock payment (only while MOCK_PAYMENTS_ENABLED)."""

    permission_classes = [StaffPermission]
    staff_permissions = {"POST": (COMPLETE_PERMISSION,)}  # the admin's "mark succeeded" action

    @extend_schema(
        request=None,
        responses={
            200: PaymentSerializer,
            **api_errors(
                {
                    400: ["not_mock_payment"],
                    404: ["payment_not_found", "mock_payments_disabled"],
                    409: ["payment_not_pending"],
                }
            ),
        },
    )
    def post(self, request, payment_id: int):
        payment = services.payment_simulate(payment_id=payment_id, actor=request.user, request=request)
        return Response(PaymentSerializer(payment).data)


def callback_rate_limit(request) -> None:
    """PAYMENT_CALLBACK_RATE_LIMIT per client IP: beyond it 429 with Retry-After (counted in
    `rate_limit_hits_total{scope="payment_callback"}`, audited at most once per IP and minute)."""
    usage = get_usage(
        request,
        group="payments.callback",
        key="ip",
        rate=settings.PAYMENT_CALLBACK_RATE_LIMIT,
        increment=True,
    )
    if usage and usage["should_limit"]:
        rate_limit_hits_total.labels(scope="payment_callback").inc()
        services.payment_callback_rejected(
            provider=(request.query_params.get("provider") or "mock")[:32],
            reason="rate_limited",
            request=request,
        )
        raise RateLimited(
            "Too many callbacks from this address. Try again later.", retry_after=usage["time_left"]
        )


class PaymentCallbackView(APIView):
    """The payment provider's callback (SPEC §7). Mock provider: the raw JSON body signed with
    HMAC-SHA256 (PAYMENT_WEBHOOK_SECRET) in `X-Payment-Signature: sha256=<hex>`. YooKassa
    (`?provider=yookassa`): unsigned; the status is fetched from YooKassa's API instead.
    Bad signature → 400, unknown payment → 404; credited exactly once however often it comes."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = []  # not the per-user tier limit: PAYMENT_CALLBACK_RATE_LIMIT per IP instead

    @extend_schema(
        request={"application/json": dict},
        responses={
            200: CallbackResultSerializer,
            **api_errors(
                {
                    400: ["invalid_signature", "invalid_callback", "unknown_provider", "amount_mismatch"],
                    404: ["payment_not_found"],
                    429: ["rate_limited"],
                    502: ["payment_provider_error"],
                }
            ),
        },
        parameters=[
            OpenApiParameter("provider", str, enum=["mock", "yookassa"], required=False),
            OpenApiParameter(SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=False),
        ],
    )
    def post(self, request):
        callback_rate_limit(request)
        body = request.body  # the raw bytes, exactly as signed
        payment, outcome = services.payment_callback_process(
            provider=request.query_params.get("provider"), body=body, headers=request.headers, request=request
        )
        return Response({"payment_id": payment.pk, "status": payment.status, "outcome": outcome})


class ExchangeRateListView(APIView):
    """The current rates (ZNC per unit) for top-ups priced in RUB, USD or EUR."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: ExchangeRateSerializer(many=True)})
    def get(self, request):
        return Response(ExchangeRateSerializer(selectors.rates_current(), many=True).data)


class MockPurchaseView(APIView):
    """Credit a top-up directly (only while MOCK_PAYMENTS_ENABLED). Honours `Idempotency-Key`."""

    @extend_schema(
        request=TopUpAmountSerializer,
        responses={
            200: MockPurchaseResultSerializer,
            **api_errors({400: ["invalid_amount"], 404: ["mock_payments_disabled"]}),
        },
        parameters=[IDEMPOTENCY_HEADER],
        examples=[OpenApiExample("Top up 150 ZNC", value={"amount": "150.00"}, request_only=True)],
    )
    def post(self, request):
        if not settings.MOCK_PAYMENTS_ENABLED:
            raise NotFound("Mock payments are disabled.", code="mock_payments_disabled")
        serializer = TopUpAmountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)

        def credit():
            row = deposit_mock(user=request.user, amount=serializer.validated_data["amount"], request=request)
            return Response(
                {"balance": f"{row.balance_after:.2f}", "transaction": TransactionSerializer(row).data}
            )

        return run_idempotent(request=request, scope="currency.mock-purchase", handler=credit)
