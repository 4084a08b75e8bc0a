from django.urls import path

from currency import views

app_name = "currency"

urlpatterns = [
    path("account/topup/", views.topup, name="topup"),
    path("account/topup/mock/", views.mock_checkout, name="mock-checkout"),
    path("account/transactions/", views.transactions, name="transactions"),
]
