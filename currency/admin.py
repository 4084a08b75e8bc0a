from django.contrib import admin

from currency.models import Transaction
from zenzefi.admin_search import IndexedSearchAdmin


@admin.register(Transaction)
class TransactionAdmin(IndexedSearchAdmin):
    """The ledger is append-only: nothing here adds, changes or deletes a row."""

    list_display = ("created_at", "user", "type", "amount", "balance_after", "description", "reference")
    list_filter = ("type", "created_at")
    search_fields = ("=user__username", "=user__email", "=reference")
    search_user_fields = ("user",)
    search_exact_fields = ("reference",)
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
