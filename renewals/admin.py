from django.contrib import admin

from renewals.models import TokenRenewal
from zenzefi.admin_search import IndexedSearchAdmin


@admin.register(TokenRenewal)
class TokenRenewalAdmin(IndexedSearchAdmin):
    """Read-only: renewals are written by the auto-renewal job with their PURCHASE row."""

    list_display = ("created_at", "token", "period_end", "new_expires_at", "price")
    search_fields = ("=token__user__username", "=token__prefix")
    search_user_fields = ("token__user",)
    search_exact_fields = ("token__prefix",)
    list_select_related = ("token",)
    list_filter = ("created_at",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
