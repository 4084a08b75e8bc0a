from django.urls import path

from tokens import views

app_name = "tokens"

urlpatterns = [
    path("account/tokens/", views.token_list, name="list"),
    path("account/tokens/buy/", views.token_buy, name="buy"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="revoke"),
]
