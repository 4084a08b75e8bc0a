from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import F, OrderBy
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.templatetags.pages import money
from tokens.models import REVOKE_PERMISSION, AccessToken, TokenState
from tokens.services import token_revoke
from zenzefi.admin_search import IndexedSearchAdmin
from zenzefi.errors import ApplicationError, Conflict
from zenzefi.page_errors import page_error_message


class TokenStateFilter(admin.SimpleListFilter):
    """The same states as `AccessToken.state()`: revoked wins, then not activated, expired, active."""

    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return TokenState.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        live = queryset.filter(revoked_at__isnull=True)
        match self.value():
            case TokenState.NOT_ACTIVATED:
                return live.filter(activated_at__isnull=True)
            case TokenState.ACTIVE:
                return queryset.active(now)
            case TokenState.EXPIRED:
                return live.filter(activated_at__isnull=False, expires_at__lte=now)
            case TokenState.REVOKED:
                return queryset.filter(revoked_at__isnull=False)
        return queryset


class DurationFilter(admin.SimpleListFilter):
    """The priced durations (settings.TOKEN_PRICES), instead of Django's default field filter,
    which lists the values found by a SELECT DISTINCT over every token."""

    title = AccessToken._meta.get_field("duration_hours").verbose_name
    parameter_name = "duration_hours__exact"

    def lookups(self, request, model_admin):
        return [(str(hours), f"{hours} h") for hours in sorted(settings.TOKEN_PRICES)]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(duration_hours=int(value))
        return queryset


class NullsLastOrderBy(OrderBy):
    """An ordering that keeps NULLs last in both directions (the admin reverses an `OrderBy`
    for the descending sort, which would otherwise flip NULLS LAST to NULLS FIRST)."""

    def reverse_ordering(self):
        self.descending = not self.descending
        return self


# The tokens changelist sorts only by indexed columns (LARGE: 500 000 tokens; sorting by any
# other column read and sorted the whole table twice, for the capped count and for the page:
# 0.6-5.9 s). Expiry: ascending by the plain `expires_at` index, descending by
# `token_expiry_desc_idx` (expires_at DESC NULLS LAST, id DESC), the never-activated tokens'
# NULLs last both ways. Not the prefix: its index is in random heap order, so the capped count
# fetched 2 000 scattered rows (0.8-0.9 s with a cold cache), for a sort of no use.
EXPIRES_AT_ORDERING = NullsLastOrderBy(F("expires_at"), nulls_last=True)
TOKEN_SORTABLE_BY = ("user", "created_at", "expires_at_display")


class AccessTokenAdmin(IndexedSearchAdmin):
    """Tokens are changed by services only: no add, no delete, no raw edits (except `auto_renew`).
    The digest is never shown; revoking goes through `token_revoke` (with or without refund)."""

    list_display = (
        "prefix_display",
        "user",
        "duration_hours",
        "scope",
        "cost",
        "state_display",
        "created_at",
        "activated_at",
        "expires_at_display",
        "revoked_at",
        "refund_amount",
        "auto_renew",
    )
    sortable_by = TOKEN_SORTABLE_BY
    list_filter = (TokenStateFilter, "scope", DurationFilter, "auto_renew")
    search_fields = ("=user__username", "=user__email", "=prefix")
    search_user_fields = ("user",)
    search_exact_fields = ("prefix",)
    list_select_related = ("user",)
    exclude = ("digest",)
    fields = (
        "user",
        "prefix",
        "state_display",
        "duration_hours",
        "scope",
        "cost",
        "created_at",
        "activated_at",
        "expires_at",
        "revoked_at",
        "refund_amount",
        "expired_at",
        "bundle_purchase",
        "auto_renew",
    )
    readonly_fields = tuple(f for f in fields if f != "auto_renew")
    actions = ["revoke_with_refund", "force_revoke"]

    @admin.display(description=gettext_lazy("prefix"), ordering="prefix")
    def prefix_display(self, obj):
        return f"{obj.prefix}…"

    @admin.display(
        description=AccessToken._meta.get_field("expires_at").verbose_name,
        ordering=EXPIRES_AT_ORDERING,
    )
    def expires_at_display(self, obj):
        return obj.expires_at

    @admin.display(description=gettext_lazy("state"))
    def state_display(self, obj):
        return TokenState(obj.state()).label

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        return request.user.has_perm(REVOKE_PERMISSION)

    def save_model(self, request, obj, form, change):
        # Only `auto_renew` is editable, and only through the renewals service, which sits above
        # tokens: the admin registered for AccessToken is `renewals.admin.TokenAdmin`, which
        # implements this. Here nothing is ever written directly.
        raise NotImplementedError("AccessToken changes go through renewals.admin.TokenAdmin")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The service's refusal rolls the admin's save back (its transaction) and is shown as an
        # error message on the change page again, instead of a 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, page_error_message(exc), messages.ERROR)
            return redirect(request.get_full_path())

    @admin.action(description=gettext_lazy("Revoke with refund"), permissions=["revoke"])
    def revoke_with_refund(self, request, queryset):
        self._revoke(request, queryset, refund=True)

    @admin.action(description=gettext_lazy("Force revoke (no refund)"), permissions=["revoke"])
    def force_revoke(self, request, queryset):
        self._revoke(request, queryset, refund=False)

    def _revoke(self, request, queryset, *, refund: bool) -> None:
        revoked, skipped, refunded, failures = 0, 0, Decimal("0.00"), []
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                token = token_revoke(
                    token_id=pk, actor=request.user, owner=None, refund=refund, request=request
                )
            except Conflict:
                skipped += 1
            except ApplicationError as exc:
                failures.append(f"#{pk}: {exc.detail}")
            else:
                revoked += 1
                refunded += token.refund_amount or Decimal("0.00")
        if revoked:
            how = (
                _("refunded %(amount)s ZNC in total") % {"amount": money(refunded)}
                if refund
                else _("no refund")
            )
            self.message_user(
                request,
                ngettext("Revoked %(count)d token; %(how)s.", "Revoked %(count)d tokens; %(how)s.", revoked)
                % {"count": revoked, "how": how},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "Skipped %(count)d token that was already revoked.",
                    "Skipped %(count)d tokens that were already revoked.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )
        if failures:
            self.message_user(
                request, _("Not revoked: %(errors)s") % {"errors": "; ".join(failures)}, messages.ERROR
            )
        if not (revoked or skipped or failures):
            self.message_user(request, _("No tokens were revoked."), messages.WARNING)
