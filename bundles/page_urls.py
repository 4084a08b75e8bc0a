from django.urls import path

from bundles import views

app_name = "bundles"

urlpatterns = [
    path("account/bundles/", views.bundle_list, name="list"),
    path("account/bundles/<int:bundle_id>/buy/", views.bundle_buy, name="buy"),
]
