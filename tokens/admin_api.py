"""Staff REST API for tokens: `GET admin/tokens?user_id=`, `DELETE admin/tokens/<id>` (no refund)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens import selectors, services
from tokens.models import REVOKE_PERMISSION
from tokens.serializers import AccessTokenSerializer
from zenzefi.errors import InvalidInput
from zenzefi.params import parse_bool
from zenzefi.permissions import StaffPermission
from zenzefi.schema import api_errors


class AdminTokenSerializer(AccessTokenSerializer):
    """A token as staff see it: the owner added; still prefix only, never plaintext or digest."""

    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta(AccessTokenSerializer.Meta):
        fields = [*AccessTokenSerializer.Meta.fields, "user_id", "username"]
        read_only_fields = fields


class ForceRevokeResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    revoked_at = serializers.DateTimeField()
    refund = serializers.DecimalField(max_digits=12, decimal_places=2)


def parse_user_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("user_id: must be an integer.", code="invalid_user_id") from None
    if value < 1:
        raise InvalidInput("user_id: must be a positive integer.", code="invalid_user_id")
    return value


class AdminTokenListView(ListAPIView):
    """Every user's tokens, newest first; optional `user_id`, `active_only`, `skip`, `limit`."""

    permission_classes = [StaffPermission]
    staff_permissions = {"GET": ("tokens.view_accesstoken",)}
    serializer_class = AdminTokenSerializer
    filter_backends = []

    def get_queryset(self):
        params = self.request.query_params
        user_id = parse_user_id(params.get("user_id"))
        qs = selectors.token_list(active_only=parse_bool(params.get("active_only"), "active_only"))
        if user_id is not None:
            qs = qs.filter(user_id=user_id)
        return qs.select_related("user")

    @extend_schema(
        parameters=[
            OpenApiParameter("user_id", {"type": "integer", "minimum": 1}, required=False),
            OpenApiParameter("active_only", bool, required=False),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AdminTokenRevokeView(APIView):
    """Force-revoke any user's token without refund (404 unknown, 409 already revoked)."""

    permission_classes = [StaffPermission]
    staff_permissions = {"DELETE": (REVOKE_PERMISSION,)}  # the admin's revoke actions

    @extend_schema(
        responses={
            200: ForceRevokeResultSerializer,
            **api_errors({404: ["token_not_found"], 409: ["already_revoked"]}),
        }
    )
    def delete(self, request, token_id: int):
        token = services.token_revoke(token_id=token_id, actor=request.user, refund=False, request=request)
        return Response(
            {"id": token.pk, "revoked_at": token.revoked_at, "refund": f"{token.refund_amount:.2f}"}
        )
