from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.models import DASHBOARD_PERMISSION
from analytics.serializers import GlobalStatsSerializer, UsageSerializer
from zenzefi.permissions import StaffPermission

PERIOD = OpenApiParameter("period", str, enum=list(selectors.PERIODS), required=False, default="day")


class UsageView(APIView):
    """Your proxy use over the last day, week (7 days) or month (30 days)."""

    @extend_schema(parameters=[PERIOD], responses={200: UsageSerializer})
    def get(self, request):
        data = selectors.usage_for_user(user=request.user, period=request.query_params.get("period"))
        return Response(UsageSerializer(data).data)


class GlobalStatsView(APIView):
    """Platform figures for staff over the last day, week or month."""

    permission_classes = [StaffPermission]
    staff_permissions = {"GET": (DASHBOARD_PERMISSION,)}  # the admin dashboard's permission

    @extend_schema(parameters=[PERIOD], responses={200: GlobalStatsSerializer})
    def get(self, request):
        data = selectors.global_stats(period=request.query_params.get("period"))
        return Response(GlobalStatsSerializer(data).data)
