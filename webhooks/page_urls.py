"""Customer page addresses of the webhooks app (SPEC §11, §14)."""

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("account/webhooks/", views.webhook_list, name="list"),
    path("account/webhooks/<int:endpoint_id>/", views.webhook_detail, name="detail"),
    path("account/webhooks/<int:endpoint_id>/delete/", views.webhook_delete, name="delete"),
]
