from django.urls import path

from currency import api

urlpatterns = [
    path("currency/balance", api.BalanceView.as_view(), name="currency-balance"),
    path("currency/transactions", api.TransactionListView.as_view(), name="currency-transactions"),
]
