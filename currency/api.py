from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import JWTAuthentication
from currency import selectors
from currency.models import TransactionType
from currency.serializers import (
    BalanceSerializer,
    TransactionSerializer,
)
from zenzefi.errors import InvalidInput
from zenzefi.representation import represent
from zenzefi.schema import api_errors

# Authenticators that load the user's row from the database during the request itself.
ROW_READING_AUTHENTICATORS = (JWTAuthentication, SessionAuthentication)


class BalanceView(APIView):
    @extend_schema(responses={200: BalanceSerializer})
    def get(self, request):
        user = request.user
        # A JWT or a session read the user's row in this request already (one query, balance
        # included); a user handed in from elsewhere (force_authenticate) is read again.
        if not isinstance(request.successful_authenticator, ROW_READING_AUTHENTICATORS):
            user.refresh_from_db(fields=["balance"])
        return Response({"balance": f"{user.balance:.2f}"})


class TransactionListView(ListAPIView):
    """The caller's ledger, newest first; `skip`, `limit`, `transaction_type`."""

    serializer_class = TransactionSerializer
    filter_backends = []

    def get_queryset(self):
        raw = self.request.query_params.get("transaction_type")
        transaction_type = None
        if raw is not None:
            # Exactly one of the schema's enum (DEPOSIT, PURCHASE...): "", "deposit" are 400s.
            transaction_type = raw
            if transaction_type not in TransactionType.values:
                raise InvalidInput(
                    f"transaction_type: must be one of {', '.join(TransactionType.values)}.",
                    code="invalid_transaction_type",
                )
        return selectors.transaction_list(user=self.request.user, transaction_type=transaction_type)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "transaction_type",
                str,
                enum=TransactionType.values,
                required=False,
            )
        ],
        responses=api_errors({400: ["invalid_transaction_type"]}),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(represent(TransactionSerializer, page, many=True))
