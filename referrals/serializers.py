from rest_framework import serializers


class ReferredUserSerializer(serializers.Serializer):
    username = serializers.CharField()
    joined_at = serializers.DateTimeField()
    qualified = serializers.BooleanField()


class ReferralStatsSerializer(serializers.Serializer):
    referral_code = serializers.CharField()
    referral_link = serializers.URLField()
    total_referrals = serializers.IntegerField()
    qualifying_referrals = serializers.IntegerField()
    total_bonus_earned = serializers.DecimalField(max_digits=12, decimal_places=2)
    referred_users = ReferredUserSerializer(many=True)
