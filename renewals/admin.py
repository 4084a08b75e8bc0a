from django.contrib import admin

from renewals.models import TokenRenewal
from renewals.services import token_auto_renew_set
from tokens.admin import AccessTokenAdmin
from tokens.models import AccessToken
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


@admin.register(AccessToken)
class TokenAdmin(AccessTokenAdmin):
    """The token admin (tokens.admin.AccessTokenAdmin), registered here because its one editable
    column, `auto_renew`, belongs to the renewals service: its rule (not on a revoked or expired
    token), its audit entry (`admin.token_update`), one column written (docs/architecture.md)."""

    def save_model(self, request, obj, form, change):
        if "auto_renew" in form.changed_data:
            token_auto_renew_set(
                user=None, token_id=obj.pk, auto_renew=obj.auto_renew, actor=request.user, request=request
            )
