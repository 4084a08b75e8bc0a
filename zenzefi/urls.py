from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from zenzefi.health import health

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("currency.urls")),
    path("", include("tokens.urls")),
]

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
    path("health", health, name="health"),
    path("", include("django_prometheus.urls")),
]

handler404 = "zenzefi.errors.json_404"
handler500 = "zenzefi.errors.json_500"
