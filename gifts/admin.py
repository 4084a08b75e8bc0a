from django.contrib import admin

from gifts.models import GiftCode
from zenzefi.admin_search import IndexedSearchAdmin


@admin.register(GiftCode)
class GiftCodeAdmin(IndexedSearchAdmin):
    """Read-only: gift codes are written by `gifts.services` (the code itself is never stored)."""

    list_display = (
        "prefix",
        "buyer",
        "duration_hours",
        "scope",
        "price",
        "created_at",
        "expires_at",
        "redeemed_by",
        "redeemed_at",
    )
    list_filter = ("scope", "duration_hours")
    search_fields = ("=buyer__username", "=redeemed_by__username", "=prefix")
    search_user_fields = ("buyer", "redeemed_by")
    search_exact_fields = ("prefix",)
    list_select_related = ("buyer", "redeemed_by")
    exclude = ("digest",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
