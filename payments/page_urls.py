from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("payments/mock/<str:provider_payment_id>/", views.mock_checkout, name="mock-checkout"),
    path("payments/return/<str:uid>/", views.payment_return, name="return"),
]

# The top-up pages keep their names in the "currency" page namespace (`currency:topup`,
# `currency:mock-checkout`); the project's urls.py includes them there with the ledger's pages.
topup_urlpatterns = [
    path("account/topup/", views.topup, name="topup"),
    path("account/topup/mock/", views.mock_checkout_submit, name="mock-checkout"),
]
