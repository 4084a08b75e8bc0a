from django.db import models

# The admin dashboard (`/admin/analytics/`) and `GET analytics/admin/global-stats`.
DASHBOARD_PERMISSION = "analytics.view_dashboard"


class Dashboard(models.Model):
    """No table: only the holder of the `view_dashboard` permission (Django permissions belong
    to a model's content type)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dashboard", "Can view the staff dashboard and global statistics")]

    def __str__(self) -> str:
        return "dashboard"
