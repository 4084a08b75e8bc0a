from django.contrib import admin, messages
from django.utils.translation import gettext_lazy, ngettext

from accounts.templatetags.pages import money
from bundles import services
from bundles.models import TokenBundle
from zenzefi.errors import ApplicationError


@admin.register(TokenBundle)
class TokenBundleAdmin(admin.ModelAdmin):
    """Prices are derived (shown read-only). Saving and deactivating go through the services;
    bundles are never deleted, only deactivated."""

    list_display = (
        "name",
        "token_count",
        "duration_hours",
        "scope",
        "discount_percent",
        "base_price_display",
        "total_price_display",
        "savings_display",
        "price_per_token_display",
        "is_active",
        "created_at",
    )
    list_filter = ("is_active", "scope", "duration_hours")
    search_fields = ("name", "name_ru", "description", "description_ru")
    readonly_fields = (
        "base_price_display",
        "total_price_display",
        "savings_display",
        "price_per_token_display",
        "created_at",
    )
    fields = (
        "name",
        "name_ru",
        "description",
        "description_ru",
        "token_count",
        "duration_hours",
        "scope",
        "discount_percent",
        "is_active",
        *readonly_fields,
    )
    actions = ["deactivate_selected"]

    @staticmethod
    def _money(obj, name: str) -> str:
        if obj is None or obj.pk is None:
            return "—"
        try:
            return f"{money(getattr(obj, name))} ZNC"
        except ApplicationError:  # an unpriced duration (prices come from settings)
            return "—"

    @admin.display(description=gettext_lazy("Base price"))
    def base_price_display(self, obj):
        return self._money(obj, "base_price")

    @admin.display(description=gettext_lazy("Total price"))
    def total_price_display(self, obj):
        return self._money(obj, "total_price")

    @admin.display(description=gettext_lazy("Savings"))
    def savings_display(self, obj):
        return self._money(obj, "savings")

    @admin.display(description=gettext_lazy("Price per token"))
    def price_per_token_display(self, obj):
        return self._money(obj, "price_per_token")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        if change:
            services.bundle_update(bundle_id=obj.pk, actor=request.user, data=data, request=request)
            return
        fields = {name: form.cleaned_data[name] for name in services.UPDATABLE_FIELDS}
        created = services.bundle_create(actor=request.user, request=request, **fields)
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding, obj._state.db = False, created._state.db

    def has_deactivate_permission(self, request):
        # Deactivating is the soft delete: the same permission as `DELETE bundles/{id}`.
        return request.user.has_perm("bundles.delete_tokenbundle")

    @admin.action(description=gettext_lazy("Deactivate selected bundles"), permissions=["deactivate"])
    def deactivate_selected(self, request, queryset):
        count = 0
        for bundle_id in queryset.filter(is_active=True).values_list("pk", flat=True):
            services.bundle_deactivate(bundle_id=bundle_id, actor=request.user, request=request)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d bundle deactivated.", "%(count)d bundles deactivated.", count)
            % {"count": count},
            messages.SUCCESS,
        )
