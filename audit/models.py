from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditLog(models.Model):
    """Who did what to which resource, from where. Written by `audit.services.audit_record` only."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
    )
    action = models.CharField(max_length=64, db_index=True, verbose_name=_("action"))
    resource_type = models.CharField(max_length=64, blank=True, default="", verbose_name=_("resource type"))
    resource_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("resource ID"))
    details = models.JSONField(default=dict, blank=True, verbose_name=_("details"))
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name=_("IP address"))
    user_agent = models.CharField(max_length=512, blank=True, default="", verbose_name=_("user agent"))
    suspicious = models.BooleanField(default=False, db_index=True, verbose_name=_("suspicious"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("audit log")
        verbose_name_plural = _("audit logs")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["resource_type", "resource_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.resource_type}:{self.resource_id}"
