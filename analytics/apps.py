from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = _("Usage analytics")

    def ready(self):
        # The admin's branding (not Django's "Django administration"), in every language.
        from django.contrib import admin

        admin.site.site_header = "Zenzefi"
        admin.site.site_title = "Zenzefi"
        admin.site.index_title = "Zenzefi"
