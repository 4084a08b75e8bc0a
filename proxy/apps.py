from django.apps import AppConfig


class ProxyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "proxy"
    verbose_name = "Proxy"

    def ready(self) -> None:
        from proxy import checks  # noqa: F401  (registers the system checks)
