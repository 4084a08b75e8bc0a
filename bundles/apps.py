from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BundlesConfig(AppConfig):
    name = "bundles"
    verbose_name = _("Token bundles")

    def ready(self):
        from bundles.descriptions import render
        from currency.descriptions import register

        register("bundle", render)
