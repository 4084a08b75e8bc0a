from django.urls import path

from renewals import api

urlpatterns = [
    # The token resource: DELETE (tokens) and PATCH {auto_renew} (renewals) in one view.
    path("tokens/<int:token_id>", api.TokenDetailView.as_view(), name="tokens-revoke"),
    path("users/me/auto-renewal", api.AutoRenewPreferenceView.as_view(), name="users-me-auto-renewal"),
]
