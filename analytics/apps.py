from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = _("Usage analytics")

    def ready(self):
        from analytics import gauges
        from analytics.admin_labels import install

        install()
        gauges.install_scrape_functions()
