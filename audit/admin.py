from django.contrib import admin

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is never edited by hand."""

    list_display = ("created_at", "action", "actor", "resource_type", "resource_id", "ip", "suspicious")
    list_filter = ("suspicious", "action", "resource_type")
    search_fields = ("action", "resource_id", "actor__username", "actor__email", "ip")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
