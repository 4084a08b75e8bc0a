from django.contrib import admin

from notifications.models import Notification
from zenzefi.admin_search import IndexedSearchAdmin


@admin.register(Notification)
class NotificationAdmin(IndexedSearchAdmin):
    """Read-only log of notifications decided and their email's fate."""

    list_display = ("created_at", "kind", "user", "language", "email_status", "attempts", "sent_at")
    list_filter = ("kind", "email_status", "language", "created_at")
    # Sortable by indexed columns only (LARGE: any other column sorted the whole table for the
    # capped count and again for the page, 0.2-9 s; docs/performance.md, admin sort and filter pass).
    sortable_by = ("created_at", "user")
    search_fields = ("=user__username", "=user__email", "=dedupe_key")
    search_user_fields = ("user",)
    search_exact_fields = ("dedupe_key",)
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
