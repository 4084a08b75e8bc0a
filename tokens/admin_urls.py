from django.urls import path

from tokens import admin_api

urlpatterns = [
    path("tokens", admin_api.AdminTokenListView.as_view(), name="admin-tokens"),
    path("tokens/<int:token_id>", admin_api.AdminTokenRevokeView.as_view(), name="admin-tokens-revoke"),
]
