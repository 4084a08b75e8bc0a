from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from bundles import selectors, services
from bundles.serializers import (
    BundlePurchaseResultSerializer,
    BundleTokenSerializer,
    TokenBundleSerializer,
    TokenBundleWriteSerializer,
)
from idempotency.schema import IDEMPOTENCY_HEADER
from idempotency.services import run_idempotent
from zenzefi.errors import InvalidInput
from zenzefi.params import parse_bool
from zenzefi.permissions import StaffPermission
from zenzefi.schema import api_errors

# The Django admin's codenames for the same acts (bundles/admin.py: the "Deactivate" action is
# the soft delete and needs delete_tokenbundle, like `DELETE bundles/{id}`).
VIEW_INACTIVE = "bundles.view_tokenbundle"
STAFF_WRITES = {
    "POST": ("bundles.add_tokenbundle",),
    "PATCH": ("bundles.change_tokenbundle",),
    "DELETE": ("bundles.delete_tokenbundle",),
}


def _sees_inactive(request) -> bool:
    """Inactive bundles are shown to staff who may view bundles in the admin."""
    user = request.user
    return bool(user and user.is_authenticated and user.is_staff and user.has_perm(VIEW_INACTIVE))


class PublicReadStaffWrite:
    """Anyone may read; writes need the admin's permission (401 anonymous, 403 without it)."""

    staff_permissions = STAFF_WRITES

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [AllowAny()]
        return [StaffPermission()]


class BundleListView(PublicReadStaffWrite, ListAPIView):
    """Active bundles with their derived prices; staff may add `?include_inactive=true`
    (ignored for everyone else). POST (staff) creates a bundle."""

    serializer_class = TokenBundleSerializer
    filter_backends = []

    def get_queryset(self):
        include_inactive = parse_bool(self.request.query_params.get("include_inactive"), "include_inactive")
        return selectors.bundle_list(include_inactive=include_inactive and _sees_inactive(self.request))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "include_inactive", bool, required=False, description="Staff only; ignored for others."
            )
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=TokenBundleWriteSerializer,
        responses={
            201: TokenBundleSerializer,
            **api_errors(
                {400: ["invalid_name", "invalid_discount", "invalid_token_count", "invalid_duration"]}
            ),
        },
        examples=[
            OpenApiExample(
                "Weekly trio",
                value={
                    "name": "Weekly Trio",
                    "token_count": 3,
                    "duration_hours": 168,
                    "discount_percent": "10",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        serializer = TokenBundleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bundle = services.bundle_create(actor=request.user, request=request, **serializer.validated_data)
        return Response(TokenBundleSerializer(bundle).data, status=status.HTTP_201_CREATED)


class BundleDetailView(PublicReadStaffWrite, APIView):
    """One bundle (inactive ones only for staff). PATCH changes it, DELETE deactivates it (staff)."""

    @extend_schema(responses={200: TokenBundleSerializer, **api_errors({404: ["bundle_not_found"]})})
    def get(self, request, bundle_id: int):
        bundle = selectors.bundle_get(bundle_id=bundle_id, include_inactive=_sees_inactive(request))
        return Response(TokenBundleSerializer(bundle).data)

    @extend_schema(
        request=TokenBundleWriteSerializer,
        responses={
            200: TokenBundleSerializer,
            **api_errors(
                {
                    400: ["no_changes", "invalid_field", "invalid_name", "invalid_discount"],
                    404: ["bundle_not_found"],
                }
            ),
        },
        examples=[OpenApiExample("Deeper discount", value={"discount_percent": "20.00"}, request_only=True)],
    )
    def patch(self, request, bundle_id: int):
        selectors.bundle_get(bundle_id=bundle_id, include_inactive=True)  # 404 before 400
        if hasattr(request.data, "keys") and not request.data:
            raise InvalidInput("Nothing to change: give at least one field.", code="no_changes")
        serializer = TokenBundleWriteSerializer(data=request.data, partial=True, instance_id=bundle_id)
        serializer.is_valid(raise_exception=True)
        bundle = services.bundle_update(
            bundle_id=bundle_id, actor=request.user, data=serializer.validated_data, request=request
        )
        return Response(TokenBundleSerializer(bundle).data)

    @extend_schema(responses={200: TokenBundleSerializer, **api_errors({404: ["bundle_not_found"]})})
    def delete(self, request, bundle_id: int):
        bundle = services.bundle_deactivate(bundle_id=bundle_id, actor=request.user, request=request)
        return Response(TokenBundleSerializer(bundle).data)


@extend_schema(exclude=True)
class BundleDetailSlashView(BundleDetailView):
    """`bundles/{id}/`: the same view, listed once in the schema (without the slash)."""


class BundlePurchaseView(APIView):
    """Buy a bundle: every token's plaintext `token` is in this answer only (a replayed
    Idempotency-Key answer shows `token: null`: it is never stored)."""

    @extend_schema(
        request=None,
        responses={
            201: BundlePurchaseResultSerializer,
            **api_errors({402: ["insufficient_funds", "balance_conflict"], 404: ["bundle_not_found"]}),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request, bundle_id: int):
        def buy():
            purchase = services.bundle_purchase(user=request.user, bundle_id=bundle_id, request=request)
            tokens = [issued.token for issued in purchase.issued]
            plaintexts = {issued.token.pk: issued.plaintext for issued in purchase.issued}
            body = {
                "purchase_id": purchase.purchase_id,
                "bundle": TokenBundleSerializer(purchase.bundle).data,
                "tokens": BundleTokenSerializer(tokens, many=True, context={"plaintexts": plaintexts}).data,
                "total_price": f"{purchase.total_price:.2f}",
                "balance": f"{purchase.transaction.balance_after:.2f}",
            }
            return Response(body, status=status.HTTP_201_CREATED)

        # The body does not name the bundle, so the scope does: a replay can only answer for the
        # bundle in the path (a key reused for another bundle is another purchase).
        return run_idempotent(
            request=request, scope=f"bundles.purchase:{bundle_id}", handler=buy, redact=frozenset({"token"})
        )
