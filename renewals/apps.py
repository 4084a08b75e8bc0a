from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RenewalsConfig(AppConfig):
    name = "renewals"
    verbose_name = _("Token auto-renewal")

    def ready(self):
        from currency.descriptions import register
        from renewals.descriptions import render

        register("token", render, priority=10)
