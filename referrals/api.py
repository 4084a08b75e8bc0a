from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from referrals.selectors import referral_stats
from referrals.serializers import ReferralStatsSerializer


class MyReferralsView(APIView):
    """Your referral code and link, who joined with it, who qualified, and the bonus earned."""

    @extend_schema(responses={200: ReferralStatsSerializer})
    def get(self, request):
        return Response(ReferralStatsSerializer(referral_stats(user=request.user)).data)
