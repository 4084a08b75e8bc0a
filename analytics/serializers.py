from rest_framework import serializers


class UsageSerializer(serializers.Serializer):
    period = serializers.CharField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    total_requests = serializers.IntegerField()
    total_bytes_transferred = serializers.IntegerField()
    active_sessions = serializers.IntegerField()
    active_tokens = serializers.IntegerField()
    avg_session_duration_minutes = serializers.FloatField()


class GlobalStatsSerializer(serializers.Serializer):
    period = serializers.CharField()
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    new_users = serializers.IntegerField()
    token_purchases = serializers.IntegerField()
    tokens_sold = serializers.IntegerField()
    revenue_znc = serializers.DecimalField(max_digits=14, decimal_places=2)
    refunds_znc = serializers.DecimalField(max_digits=14, decimal_places=2)
    total_proxy_requests = serializers.IntegerField()
    total_bytes_transferred = serializers.IntegerField()
    proxy_sessions = serializers.IntegerField()
