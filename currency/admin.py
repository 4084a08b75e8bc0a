from django.contrib import admin

from currency.models import Transaction


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    """The ledger is append-only: nothing here adds, changes or deletes a row."""

    list_display = ("created_at", "user", "type", "amount", "balance_after", "description", "reference")
    list_filter = ("type",)
    search_fields = ("user__username", "user__email", "reference", "description")
    date_hierarchy = "created_at"
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
