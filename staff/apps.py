from django.apps import AppConfig


class StaffConfig(AppConfig):
    """Back-office code that spans apps: the User admin, the staff user API, the rate-limit bans
    page, `manage.py bootstrap` (docs/architecture.md "Layers")."""

    name = "staff"
