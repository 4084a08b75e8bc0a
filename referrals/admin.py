from django.contrib import admin

from referrals.models import ReferralBonus
from zenzefi.admin_search import IndexedSearchAdmin


@admin.register(ReferralBonus)
class ReferralBonusAdmin(IndexedSearchAdmin):
    """Read-only: bonuses are written by `referrals.services` with the deposit that qualified."""

    list_display = ("created_at", "referrer", "referred", "deposit_amount", "amount")
    search_fields = ("=referrer__username", "=referred__username")
    search_user_fields = ("referrer", "referred")
    list_select_related = ("referrer", "referred")
    list_filter = ("created_at",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
