from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = _("Access tokens")

    def ready(self):
        from currency.descriptions import register
        from tokens.descriptions import render

        register("token", render)
