from drf_spectacular.utils import extend_schema
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


class WebhookEndpointListCreateView(ListAPIView):
    """Your webhook endpoints (paginated by `skip`/`limit`); POST adds one and answers with its
    `secret`, shown this once."""

    serializer_class = WebhookEndpointSerializer
    filter_backends = []

    def get_queryset(self):
        return selectors.webhook_endpoint_list(user=self.request.user)

    @extend_schema(request=WebhookEndpointCreateSerializer, responses={201: CreatedWebhookEndpointSerializer})
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
    @extend_schema(responses={204: None})
    def delete(self, request, endpoint_id: int):
        services.webhook_endpoint_delete(user=request.user, endpoint_id=endpoint_id, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
