from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from referrals.selectors import referral_stats
from referrals.serializers import ReferralStatsSerializer
from zenzefi.pagination import parse_skip_limit
from zenzefi.schema import api_errors


class MyReferralsView(APIView):
    """Your referral code and link, who joined with it, who qualified, and the bonus earned."""

    @extend_schema(
        responses={200: ReferralStatsSerializer, **api_errors({400: ["invalid_pagination"]})},
        parameters=[
            OpenApiParameter("skip", int, required=False, description="Referred users to skip (default 0)."),
            OpenApiParameter(
                "limit", int, required=False, description="Referred users in `referred_users` (a page)."
            ),
        ],
    )
    def get(self, request):
        skip, limit = parse_skip_limit(request.query_params)
        stats = referral_stats(user=request.user, skip=skip, limit=limit)
        return Response(ReferralStatsSerializer(stats).data)
