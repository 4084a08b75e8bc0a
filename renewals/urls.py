from django.urls import path

from renewals import api

urlpatterns = [
    path("users/me/auto-renewal", api.AutoRenewPreferenceView.as_view(), name="users-me-auto-renewal"),
]
