from django.urls import path

from webhooks import api

# `webhooks/payment` (the payment provider's callback) belongs to the payments app: only
# integer ids route to the endpoint detail view here.
urlpatterns = [
    path("webhooks/", api.WebhookEndpointListCreateView.as_view(), name="webhooks-list"),
    path("webhooks/<int:endpoint_id>", api.WebhookEndpointDetailView.as_view(), name="webhooks-detail"),
]
