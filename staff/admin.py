from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.forms import (
    AdminUserChangeForm,
    AdminUserCreationForm,
    ServiceAdminPasswordChangeForm,
)
from accounts.models import User
from accounts.templatetags.pages import money
from audit.services import audit_record, request_origin
from staff.forms import BalanceAdjustmentForm
from staff.services import user_admin_may_change, user_admin_update, user_admin_update_check
from zenzefi.admin_search import CappedCountPaginator, user_ids_matching
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message

ADJUST_PERMISSION = "accounts.adjust_balance"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = AdminUserChangeForm
    add_form = AdminUserCreationForm
    change_password_form = ServiceAdminPasswordChangeForm  # revokes the user's API sessions
    list_display = (
        "username",
        "email",
        "full_name",
        "balance",
        "tier",
        "is_active",
        "is_staff",
        "date_joined",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "tier", "language")
    # Sortable by indexed columns only (LARGE: any other column sorted the whole table for the
    # capped count and again for the page, 0.2-9 s; docs/performance.md, admin sort and filter pass).
    sortable_by = ("username", "email", "date_joined")
    # Searches exact username, email, referral code or id (see zenzefi.admin_search): indexed.
    search_fields = ("=username", "=email", "=referral_code")
    ordering = ("-date_joined",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):
        if not (search_term or "").strip():
            return queryset, False
        return queryset.filter(pk__in=user_ids_matching(search_term)), False

    readonly_fields = (
        "balance_with_adjust_link",
        "referral_code",
        "referral_bonus_earned",
        "last_login",
        "date_joined",
    )
    actions = ["adjust_balance_action"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (gettext_lazy("Profile"), {"fields": ("email", "full_name", "language", "tier")}),
        (
            gettext_lazy("Money"),
            {"fields": ("balance_with_adjust_link", "referral_code", "referred_by", "referral_bonus_earned")},
        ),
        (
            gettext_lazy("Preferences"),
            {
                "fields": (
                    "auto_renew_min_balance",
                    "notify_token_expiring",
                    "notify_low_balance",
                    "notify_renewal",
                    "notify_payment",
                )
            },
        ),
        (
            gettext_lazy("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (gettext_lazy("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )
    raw_id_fields = ("referred_by",)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not user_admin_may_change(actor=request.user, target=obj):
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Staff with change_user cannot hand out rights they may not have themselves.
            fields += ("is_superuser", "groups", "user_permissions")
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        """The change form checks `is_active`/`tier` by the service's rules
        (`user_admin_update_check`): deactivating your own account is a form error, not a write."""
        form = super().get_form(request, obj, change=change, **kwargs)
        if not change:
            return form
        actor = request.user

        class ServiceCheckedForm(form):
            def clean(self):
                cleaned = super().clean()
                ruled = {f: cleaned[f] for f in ("is_active", "tier") if f in self.changed_data}
                if ruled:
                    try:
                        user_admin_update_check(actor=actor, target=self.instance, **ruled)
                    except ApplicationError as exc:
                        field = "is_active" if exc.code == "cannot_deactivate_self" else None
                        self.add_error(field, page_error_message(exc))
                return cleaned

        return ServiceCheckedForm

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # A service refusal at save time (a race past the form's check) rolls the whole save back
        # (the admin's transaction) and comes back as a message, not a 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, page_error_message(exc), messages.ERROR)
            return redirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        """A change goes through `staff.services.user_admin_update` (the staff API's service):
        its rules for `is_active`/`tier`, one `admin.user_update` audit entry, a deactivation ends
        the user's sessions and token cache entries. Money columns are never written here."""
        if not change:
            super().save_model(request, obj, form, change)
            audit_record(
                action="admin.user_create",
                actor=request.user,
                resource_type="user",
                resource_id=obj.pk,
                details={"fields": sorted(form.changed_data), "by": request.user.username},
                **request_origin(request),
            )
            return
        many = {f.name for f in obj._meta.many_to_many}
        changed = [f for f in form.changed_data if f not in ("password", "password1", "password2")]
        if not changed:
            return
        ruled = {f: form.cleaned_data[f] for f in ("is_active", "tier") if f in changed}
        user_admin_update(
            user_id=obj.pk,
            actor=request.user,
            **ruled,
            fields={f: form.cleaned_data[f] for f in changed if f not in many and f not in ruled},
            related=tuple(f for f in changed if f in many),
            request=request,
        )

    @admin.display(description=gettext_lazy("Balance (ZNC)"))
    def balance_with_adjust_link(self, obj):
        if not obj.pk:
            return money(0)
        url = reverse("admin:accounts_user_adjust_balance", args=[obj.pk])
        return format_html(
            '{} ZNC &nbsp; <a class="button" href="{}">{}</a>', money(obj.balance), url, _("Adjust balance…")
        )

    def get_urls(self):
        custom = [
            path(
                "<int:user_id>/adjust-balance/",
                self.admin_site.admin_view(self.adjust_balance_view),
                name="accounts_user_adjust_balance",
            )
        ]
        return custom + super().get_urls()

    @admin.action(
        description=gettext_lazy("Adjust balance of the selected user…"), permissions=["adjust_balance"]
    )
    def adjust_balance_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one user to adjust."), messages.WARNING)
            return None
        return redirect("admin:accounts_user_adjust_balance", queryset.get().pk)

    def has_adjust_balance_permission(self, request):
        return request.user.has_perm(ADJUST_PERMISSION)

    def adjust_balance_view(self, request, user_id: int):
        if not self.has_adjust_balance_permission(request):
            raise PermissionDenied
        target = get_object_or_404(User, pk=user_id)
        form = BalanceAdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:  # the staff API's service: the same rules, ledger row and audit entries
                target = user_admin_update(
                    user_id=target.pk,
                    actor=request.user,
                    adjustment_amount=form.cleaned_data["amount"],
                    adjustment_reason=form.cleaned_data["reason"],
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error("amount", page_error_message(exc))
            else:
                self.message_user(
                    request,
                    _("Balance of %(username)s adjusted by %(amount)s ZNC; now %(balance)s ZNC.")
                    % {
                        "username": target.username,
                        "amount": money(form.cleaned_data["amount"]),
                        "balance": money(target.balance),
                    },
                    messages.SUCCESS,
                )
                return redirect("admin:accounts_user_change", target.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Adjust balance: %(username)s") % {"username": target.username},
            "target": target,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/accounts/user/adjust_balance.html", context)
