from django.urls import path

from currency import views

app_name = "currency"

# The "currency" page namespace also holds the top-up pages (`currency:topup`,
# `currency:mock-checkout`): they live in `payments` (payments.page_urls.topup_urlpatterns) and
# join this namespace in the project's urls.py, so the ledger imports no payment code.
urlpatterns = [
    path("account/transactions/", views.transactions, name="transactions"),
]
