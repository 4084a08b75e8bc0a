from django.urls import path

from tokens import api

urlpatterns = [
    path("tokens/purchase", api.TokenPurchaseView.as_view(), name="tokens-purchase"),
    path("tokens/my-tokens", api.MyTokensView.as_view(), name="tokens-mine"),
    # tokens/<int:token_id> ("tokens-revoke": DELETE here, PATCH {auto_renew} in renewals) is routed
    # by renewals/urls.py to renewals.api.TokenDetailView, a subclass of api.TokenRevokeView.
]
