from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("payments/mock/<str:provider_payment_id>/", views.mock_checkout, name="mock-checkout"),
    path("payments/return/<str:uid>/", views.payment_return, name="return"),
]
