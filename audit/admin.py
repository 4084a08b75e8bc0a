from django.contrib import admin

from audit.models import AuditLog
from zenzefi.admin_search import IndexedSearchAdmin


@admin.register(AuditLog)
class AuditLogAdmin(IndexedSearchAdmin):
    """Read-only: the audit trail is never edited by hand."""

    list_display = ("created_at", "action", "actor", "resource_type", "resource_id", "ip", "suspicious")
    list_filter = ("suspicious", "created_at")
    # Sortable by indexed columns only (LARGE: any other column sorted the whole table for the
    # capped count and again for the page, 0.2-9 s; docs/performance.md, admin sort and filter pass).
    sortable_by = ("created_at", "actor")
    search_fields = ("=actor__username", "=actor__email", "=action")
    search_user_fields = ("actor",)
    search_exact_fields = ("action",)
    list_select_related = ("actor",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
