from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.models import DASHBOARD_PERMISSION
from analytics.serializers import GlobalStatsSerializer, UsageSerializer
from zenzefi.errors import InvalidInput
from zenzefi.permissions import StaffPermission
from zenzefi.schema import api_errors

PERIOD = OpenApiParameter("period", str, enum=list(selectors.PERIODS), required=False, default="day")
PERIOD_ERRORS = api_errors({400: ["invalid_period"]})


def _period(request) -> str:
    """`day` when absent; anything but day, week or month (an empty value too) is a 400."""
    period = request.query_params.get("period", "day")
    if period not in selectors.PERIODS:
        raise InvalidInput(f"period: must be one of {', '.join(selectors.PERIODS)}.", code="invalid_period")
    return period


class UsageView(APIView):
    """Your proxy use over the last day, week (7 days) or month (30 days)."""

    @extend_schema(parameters=[PERIOD], responses={200: UsageSerializer, **PERIOD_ERRORS})
    def get(self, request):
        data = selectors.usage_for_user(user=request.user, period=_period(request))
        return Response(UsageSerializer(data).data)


class GlobalStatsView(APIView):
    """Platform figures for staff over the last day, week or month."""

    permission_classes = [StaffPermission]
    staff_permissions = {"GET": (DASHBOARD_PERMISSION,)}  # the admin dashboard's permission

    @extend_schema(parameters=[PERIOD], responses={200: GlobalStatsSerializer, **PERIOD_ERRORS})
    def get(self, request):
        data = selectors.global_stats(period=_period(request))
        return Response(GlobalStatsSerializer(data).data)
