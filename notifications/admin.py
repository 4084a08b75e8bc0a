from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only log of notifications decided and their email's fate."""

    list_display = ("created_at", "kind", "user", "language", "email_status", "attempts", "sent_at")
    list_filter = ("kind", "email_status", "language")
    search_fields = ("user__username", "user__email", "dedupe_key")
    date_hierarchy = "created_at"
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
