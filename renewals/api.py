from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from renewals.serializers import AutoRenewPreferenceSerializer
from renewals.services import auto_renew_min_balance_set
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
