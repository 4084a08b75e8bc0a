from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = _("Monitoring")

    def ready(self):
        from django.db.models.signals import post_migrate

        from monitoring.schedule import ensure_after_migrate
        from zenzefi import startup

        startup.prepare()  # folders and the own-IP lookup: never at settings import (issue 15)
        # After every `migrate`: the SPEC §10 jobs exist (missing ones created, edits kept).
        post_migrate.connect(ensure_after_migrate, dispatch_uid="monitoring.schedule.ensure")
