from django.urls import path

from bundles import api

urlpatterns = [
    path("bundles/", api.BundleListView.as_view(), name="bundles-list"),
    path("bundles/<int:bundle_id>", api.BundleDetailView.as_view(), name="bundles-detail"),
    path("bundles/<int:bundle_id>/", api.BundleDetailSlashView.as_view(), name="bundles-detail-slash"),
    path("bundles/<int:bundle_id>/purchase", api.BundlePurchaseView.as_view(), name="bundles-purchase"),
]
