from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer pages that read several apps (landing, sign-in, dashboard, referrals, connect,
    profile): above the products, below the project wiring (docs/architecture.md "Layers")."""

    name = "portal"
