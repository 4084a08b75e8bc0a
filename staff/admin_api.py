"""Staff REST API for users: `GET admin/users`, `PATCH admin/users/<id>`."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Tier, User
from currency.services import ADJUSTMENT_LIMIT, ADJUSTMENT_REASON_MAX_LENGTH
from staff import services
from zenzefi.amounts import AmountField
from zenzefi.errors import InvalidInput
from zenzefi.fields import StrictJSONMixin
from zenzefi.params import parse_optional_bool
from zenzefi.permissions import StaffPermission
from zenzefi.schema import api_errors

# The Django admin's codenames for the same acts (accounts/admin.py).
VIEW_USER = "accounts.view_user"
CHANGE_USER = "accounts.change_user"
ADJUST_BALANCE = "accounts.adjust_balance"


def admin_user_queryset() -> QuerySet[User]:
    """Users with their token counts, in the one query (no per-row queries). The counts are
    correlated subqueries, evaluated for the rows of the page only (after the LIMIT), instead of
    grouping every user against every token first; a COUNT of the list ignores them."""
    from tokens.models import AccessToken

    now = timezone.now()

    def count_of(tokens) -> Coalesce:
        per_user = tokens.filter(user=OuterRef("pk")).order_by().values("user").annotate(n=Count("*"))
        return Coalesce(Subquery(per_user.values("n")[:1], output_field=IntegerField()), 0)

    return User.objects.annotate(
        tokens_total=count_of(AccessToken.objects.all()),
        tokens_active=count_of(AccessToken.objects.active(now)),
        tokens_usable=count_of(AccessToken.objects.usable(now)),
    )


def admin_user_list(*, search: str = "", is_active: bool | None = None) -> QuerySet[User]:
    qs = admin_user_queryset()
    if search:
        if connection.vendor == "postgresql":
            # The same substring match as icontains, written as ILIKE so the pg_trgm GIN indexes
            # (accounts migration 0005) serve it instead of a scan of every user.
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            qs = qs.extra(
                where=[
                    '("accounts_user"."username" ILIKE %s OR "accounts_user"."email" ILIKE %s'
                    ' OR "accounts_user"."full_name" ILIKE %s)'
                ],
                params=[pattern, pattern, pattern],
            )
        else:
            qs = qs.filter(
                Q(username__icontains=search) | Q(email__icontains=search) | Q(full_name__icontains=search)
            )
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs.order_by("-date_joined", "-id")


class AdminUserSerializer(serializers.ModelSerializer):
    tokens_total = serializers.IntegerField(read_only=True)
    tokens_active = serializers.IntegerField(
        read_only=True,
        help_text="Active tokens: activated, not expired, not revoked (as `active_only` everywhere).",
    )
    tokens_usable = serializers.IntegerField(
        read_only=True,
        help_text="Tokens neither revoked nor expired: the active ones and those not yet used.",
    )

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "full_name",
            "balance",
            "tier",
            "language",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
            "referral_code",
            "tokens_total",
            "tokens_active",
            "tokens_usable",
        ]
        read_only_fields = fields


class BalanceAdjustmentSerializer(StrictJSONMixin, serializers.Serializer):
    amount = AmountField(
        max_digits=12,
        decimal_places=2,
        min_value=-ADJUSTMENT_LIMIT,
        max_value=ADJUSTMENT_LIMIT,
        help_text="Signed: positive credits the user, negative debits. Two decimals at most, not zero.",
    )
    reason = serializers.CharField(
        max_length=ADJUSTMENT_REASON_MAX_LENGTH, help_text="Required; becomes the ledger description."
    )


class AdminUserUpdateSerializer(StrictJSONMixin, serializers.Serializer):
    is_active = serializers.BooleanField(required=False)
    tier = serializers.ChoiceField(choices=Tier.choices, required=False)
    balance_adjustment = BalanceAdjustmentSerializer(
        required=False, help_text="The only way to change a balance: an ADJUSTMENT with a reason."
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give at least one of is_active, tier, balance_adjustment.")
        return attrs


class AdminUserListView(ListAPIView):
    """All users, newest first; `search` (username, email, full name), `is_active`, `skip`, `limit`."""

    permission_classes = [StaffPermission]
    staff_permissions = {"GET": (VIEW_USER,)}
    serializer_class = AdminUserSerializer
    filter_backends = []

    def get_queryset(self):
        params = self.request.query_params
        return admin_user_list(
            search=params.get("search", "").strip(),
            is_active=parse_optional_bool(params.get("is_active"), "is_active"),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, required=False, description="Part of username, email or name."),
            OpenApiParameter("is_active", bool, required=False),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AdminUserDetailView(APIView):
    """Change `is_active`, `tier`, or the balance (only as `balance_adjustment`); all or nothing."""

    permission_classes = [StaffPermission]

    def required_permissions(self, request) -> tuple[str, ...]:
        """`is_active`/`tier` need `accounts.change_user`, `balance_adjustment` needs
        `accounts.adjust_balance` (both when both are given), as in the admin."""
        keys = set(request.data.keys()) if hasattr(request.data, "keys") else set()
        perms = []
        if not keys or keys - {"balance_adjustment"}:
            perms.append(CHANGE_USER)
        if "balance_adjustment" in keys:
            perms.append(ADJUST_BALANCE)
        return tuple(perms)

    @extend_schema(
        request=AdminUserUpdateSerializer,
        responses={
            200: AdminUserSerializer,
            **api_errors(
                {
                    400: [
                        "balance_read_only",
                        "unknown_field",
                        "no_changes",
                        "cannot_deactivate_self",
                        "invalid_adjustment",
                        "zero_amount",
                    ],
                    402: ["insufficient_funds"],
                    404: ["user_not_found"],
                }
            ),
        },
        examples=[
            OpenApiExample(
                "Credit 50 ZNC",
                value={"balance_adjustment": {"amount": "50.00", "reason": "Goodwill for downtime"}},
                request_only=True,
            )
        ],
    )
    def patch(self, request, user_id: int):
        data = request.data
        if hasattr(data, "keys"):
            if "balance" in data:
                raise InvalidInput(
                    "balance is read-only: change it with balance_adjustment {amount, reason}.",
                    code="balance_read_only",
                )
            unknown = sorted(set(data.keys()) - set(AdminUserUpdateSerializer().fields))
            if unknown:
                raise InvalidInput(
                    f"{unknown[0]}: cannot be changed here (allowed: is_active, tier, balance_adjustment).",
                    code="unknown_field",
                )
        serializer = AdminUserUpdateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        adjustment = values.get("balance_adjustment") or {}
        services.user_admin_update(
            user_id=user_id,
            actor=request.user,
            is_active=values.get("is_active"),
            tier=values.get("tier"),
            adjustment_amount=adjustment.get("amount"),
            adjustment_reason=adjustment.get("reason"),
            request=request,
        )
        return Response(AdminUserSerializer(admin_user_queryset().get(pk=user_id)).data)
