from django.urls import path

from referrals import api

urlpatterns = [
    path("users/me/referrals", api.MyReferralsView.as_view(), name="users-me-referrals"),
]
