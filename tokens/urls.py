from django.urls import path

from tokens import api

urlpatterns = [
    path("tokens/purchase", api.TokenPurchaseView.as_view(), name="tokens-purchase"),
    path("tokens/my-tokens", api.MyTokensView.as_view(), name="tokens-mine"),
    path("tokens/<int:token_id>", api.TokenRevokeView.as_view(), name="tokens-revoke"),
]
