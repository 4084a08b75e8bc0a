"""`GET /api/v1/`: the API root, with links to the main resources (SPEC §13)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

# name in the answer -> URL name (zenzefi/urls.py and the apps' urls.py)
LINKS = {
    "register": "auth-register",
    "login": "auth-login",
    "refresh": "auth-refresh",
    "me": "users-me",
    "referrals": "users-me-referrals",
    "auto_renewal": "users-me-auto-renewal",
    "balance": "currency-balance",
    "transactions": "currency-transactions",
    "top_up": "currency-purchase",
    "mock_top_up": "currency-mock-purchase",
    "payments": "currency-payments",
    "exchange_rates": "currency-exchange-rates",
    "token_purchase": "tokens-purchase",
    "my_tokens": "tokens-mine",
    "bundles": "bundles-list",
    "gifts": "gifts-list",
    "webhooks": "webhooks-list",
    "usage": "analytics-usage",
    "admin_users": "admin-users",
    "admin_tokens": "admin-tokens",
    "admin_global_stats": "analytics-global-stats",
    "schema": "schema",
    "docs": "swagger-ui",
}
# Served by the lean ASGI proxy path (zenzefi/asgi.py), not by Django's URL resolver.
PROXY_STATUS_PATH = "/api/v1/proxy/status"


class ApiRootSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    links = serializers.DictField(child=serializers.URLField(), help_text="Resource name → absolute URL.")


class ApiRootView(APIView):
    """Where to start: every main resource of the REST API, by name."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: ApiRootSerializer},
        examples=[
            OpenApiExample(
                "Root",
                value={
                    "name": "Zenzefi Platform API",
                    "version": "v1",
                    "links": {"me": "http://127.0.0.1:8000/api/v1/users/me", "...": "..."},
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        links = {name: reverse(url_name, request=request) for name, url_name in LINKS.items()}
        links["proxy_status"] = request.build_absolute_uri(PROXY_STATUS_PATH)
        return Response({"name": "Zenzefi Platform API", "version": "v1", "links": links})
