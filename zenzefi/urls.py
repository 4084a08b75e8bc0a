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

api_v1 = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("accounts.urls")),
    path("", include("currency.urls")),
    path("", include("tokens.urls")),
    path("admin/", include("staff.admin_urls")),
    path("admin/", include("tokens.admin_urls")),
    path("", include("bundles.urls")),
    # payments first: `webhooks/payment` is the payment provider's callback.
    path("", include("payments.urls")),
    path("", include("referrals.urls")),
    path("", include("gifts.urls")),
    path("", include("renewals.urls")),
    path("", include("webhooks.urls")),
    path("", include("analytics.urls")),
]

urlpatterns = [
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
    path("api/v1/", include(api_v1)),
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
