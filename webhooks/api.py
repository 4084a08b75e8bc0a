from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from webhooks import selectors, services
from webhooks.serializers import (
    CreatedWebhookEndpointSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
)
from zenzefi.schema import api_errors


class WebhookEndpointListCreateView(ListAPIView):
    """Your webhook endpoints (paginated by `skip`/`limit`); POST adds one and answers with its
    `secret`, shown this once."""

    serializer_class = WebhookEndpointSerializer
    filter_backends = []

    def get_queryset(self):
        return selectors.webhook_endpoint_list(user=self.request.user)

    @extend_schema(
        request=WebhookEndpointCreateSerializer,
        responses={
            201: CreatedWebhookEndpointSerializer,
            **api_errors({400: ["invalid_events", "webhook_url_refused", "too_many_webhooks"]}),
        },
        examples=[
            OpenApiExample(
                "Purchases and expiry",
                value={
                    "url": "https://hooks.example.com/zenzefi",
                    "events": ["token.purchased", "token.expired"],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.webhook_endpoint_create(
            user=request.user,
            url=serializer.validated_data["url"],
            events=serializer.validated_data["events"],
            request=request,
        )
        body = CreatedWebhookEndpointSerializer(created.endpoint, context={"secret": created.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(APIView):
    @extend_schema(responses={204: None, **api_errors({404: ["webhook_not_found"]})})
    def delete(self, request, endpoint_id: int):
        services.webhook_endpoint_delete(user=request.user, endpoint_id=endpoint_id, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
