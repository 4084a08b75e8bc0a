from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProxyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "proxy"
    verbose_name = _("Proxy")

    def ready(self) -> None:
        from proxy import checks  # noqa: F401  (registers the system checks)
