from django.contrib import admin

from referrals.models import ReferralBonus


@admin.register(ReferralBonus)
class ReferralBonusAdmin(admin.ModelAdmin):
    """Read-only: bonuses are written by `referrals.services` with the deposit that qualified."""

    list_display = ("created_at", "referrer", "referred", "deposit_amount", "amount")
    search_fields = ("referrer__username", "referred__username")
    list_select_related = ("referrer", "referred")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
