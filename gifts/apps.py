from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GiftsConfig(AppConfig):
    name = "gifts"
    verbose_name = _("Gift codes")

    def ready(self):
        from currency.descriptions import register
        from gifts.descriptions import render

        register("gift", render)
