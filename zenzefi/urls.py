from importlib import import_module

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics import metrics_export
from analytics.views import dashboard as analytics_dashboard
from currency import page_urls as currency_pages
from monitoring.views import health, health_detailed
from payments import page_urls as payments_pages
from staff.views import rate_limit_bans_page
from zenzefi.api_root import ApiRootView


def _flat(module: str) -> list:
    """An app's API patterns inline (no `include("")` level to walk through on every request)."""
    return list(import_module(module).urlpatterns)


# The API's patterns in one flat list (same order as before: `webhooks/payment` of payments first):
# resolving an API path walked 13 nested `include("")`s before (docs/performance.md).
api_v1 = [
    path("", ApiRootView.as_view(), name="api-root"),
    *_flat("accounts.urls"),
    *_flat("currency.urls"),
    *_flat("tokens.urls"),
    path("admin/", include("staff.admin_urls")),
    path("admin/", include("tokens.admin_urls")),
    *_flat("bundles.urls"),
    # payments first: `webhooks/payment` is the payment provider's callback.
    *_flat("payments.urls"),
    *_flat("referrals.urls"),
    *_flat("gifts.urls"),
    *_flat("renewals.urls"),
    *_flat("webhooks.urls"),
    *_flat("analytics.urls"),
]

urlpatterns = [
    # The REST API first: most requests are API calls, and no page path starts with "api/".
    path("api/v1/", include(api_v1)),
    # Customer pages (SPEC §14); "portal.page_urls" serves the landing page at "/".
    path("", include("portal.page_urls")),
    path("", include("tokens.page_urls")),
    # The "currency" page namespace: the ledger's history and the top-up pages (owned by payments).
    path("", include((currency_pages.urlpatterns + payments_pages.topup_urlpatterns, "currency"))),
    path("", include("bundles.page_urls")),
    path("", include("payments.page_urls")),
    path("", include("gifts.page_urls")),
    path("", include("renewals.page_urls")),
    path("", include("webhooks.page_urls")),
    path("admin/analytics/", admin.site.admin_view(analytics_dashboard), name="analytics-dashboard"),
    path("admin/rate-limit-bans/", admin.site.admin_view(rate_limit_bans_page), name="rate-limit-bans"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
    path("health", health, name="health"),
    path("health/detailed", health_detailed, name="health-detailed"),
    # /metrics: django-prometheus' exporter after refreshing the shared-state gauges (matched first).
    path("metrics", metrics_export.metrics, name="metrics"),
    path("", include("django_prometheus.urls")),
]

handler404 = "zenzefi.errors.json_404"
handler500 = "zenzefi.errors.json_500"
