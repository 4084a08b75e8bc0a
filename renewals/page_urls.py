from django.urls import path

from renewals import views

app_name = "renewals"

urlpatterns = [
    path("account/auto-renewal/", views.preferences, name="preferences"),
    path("account/tokens/<int:token_id>/auto-renew/", views.toggle, name="toggle"),
]
