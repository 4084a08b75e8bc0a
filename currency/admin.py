from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.utils.translation import gettext_lazy as _

from currency.descriptions import describe, description_of
from currency.models import Transaction
from zenzefi.admin_search import IndexedSearchAdmin


class DescribedChangeList(ChangeList):
    """Renders the page's descriptions in one batch (one query per kind of reference)."""

    def get_results(self, request):
        super().get_results(request)
        describe(self.result_list)


@admin.register(Transaction)
class TransactionAdmin(IndexedSearchAdmin):
    """The ledger is append-only: nothing here adds, changes or deletes a row."""

    list_display = (
        "created_at",
        "user",
        "type",
        "amount",
        "balance_after",
        "description_display",
        "reference",
    )
    list_filter = ("type", "created_at")
    # Sortable by indexed columns only (LARGE: any other column sorted the whole table for the
    # capped count and again for the page, 0.2-9 s; docs/performance.md, admin sort and filter pass).
    sortable_by = ("created_at", "reference")
    search_fields = ("=user__username", "=user__email", "=reference")
    search_user_fields = ("user",)
    search_exact_fields = ("reference",)
    list_select_related = ("user",)
    readonly_fields = ("description_display",)

    def get_changelist(self, request, **kwargs):
        return DescribedChangeList

    @admin.display(description=_("description"))
    def description_display(self, obj):
        """In the staff member's language, from the type and reference (the stored English text
        is the `description` field on the detail page)."""
        return description_of(obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
