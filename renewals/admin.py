from django.contrib import admin

from renewals.models import TokenRenewal


@admin.register(TokenRenewal)
class TokenRenewalAdmin(admin.ModelAdmin):
    """Read-only: renewals are written by the auto-renewal job with their PURCHASE row."""

    list_display = ("created_at", "token", "period_end", "new_expires_at", "price")
    search_fields = ("token__prefix", "token__user__username")
    list_select_related = ("token",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
