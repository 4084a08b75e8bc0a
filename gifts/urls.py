from django.urls import path

from gifts import api

urlpatterns = [
    path("gifts/", api.GiftListView.as_view(), name="gifts-list"),
    path("gifts/purchase", api.GiftPurchaseView.as_view(), name="gifts-purchase"),
    path("gifts/redeem", api.GiftRedeemView.as_view(), name="gifts-redeem"),
]
