from django.urls import path

from payments import api

# Included in the api_v1 list before `webhooks.urls`: `webhooks/payment` is the provider callback.
urlpatterns = [
    path("currency/purchase", api.PaymentCreateView.as_view(), name="currency-purchase"),
    path("currency/mock-purchase", api.MockPurchaseView.as_view(), name="currency-mock-purchase"),
    path("currency/payments", api.PaymentListView.as_view(), name="currency-payments"),
    path("currency/payments/<int:payment_id>", api.PaymentDetailView.as_view(), name="currency-payment"),
    path("currency/exchange-rates", api.ExchangeRateListView.as_view(), name="currency-exchange-rates"),
    path(
        "currency/admin/simulate-payment/<int:payment_id>",
        api.PaymentSimulateView.as_view(),
        name="currency-simulate-payment",
    ),
    path("webhooks/payment", api.PaymentCallbackView.as_view(), name="payments-callback"),
]
