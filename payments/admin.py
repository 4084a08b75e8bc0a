from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from payments.models import COMPLETE_PERMISSION, ExchangeRate, Payment, PaymentStatus
from payments.services import payment_complete
from zenzefi.admin_search import IndexedSearchAdmin
from zenzefi.errors import ApplicationError


@admin.register(Payment)
class PaymentAdmin(IndexedSearchAdmin):
    """Payments are written by `payments.services` only: every field is read-only here. The
    action completes pending mock payments through the same service as a provider callback."""

    list_display = (
        "id",
        "created_at",
        "user",
        "provider",
        "amount",
        "currency",
        "original_amount",
        "exchange_rate",
        "status",
        "completed_at",
    )
    list_filter = ("status", "provider", "currency", "created_at")
    # Sortable by indexed columns only (LARGE: any other column sorted the whole table for the
    # capped count and again for the page, 0.2-9 s; docs/performance.md, admin sort and filter pass).
    sortable_by = ("id", "created_at", "user")
    search_fields = ("=user__username", "=user__email", "=provider_payment_id")
    search_user_fields = ("user",)
    search_exact_fields = ("provider_payment_id",)
    list_select_related = ("user",)
    actions = ["mark_succeeded_mock"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only: a "Save" here would write back a stale row (status, deposit) and could undo a
        # completion racing with it. The action goes through payments.services instead.
        return False

    def has_complete_permission(self, request):
        return request.user.has_perm(COMPLETE_PERMISSION)

    @admin.action(
        description=gettext_lazy("Mark succeeded (mock payments only; credits once)"),
        permissions=["complete"],
    )
    def mark_succeeded_mock(self, request, queryset):
        if not settings.MOCK_PAYMENTS_ENABLED:
            self.message_user(
                request, _("Mock payments are disabled (MOCK_PAYMENTS_ENABLED)."), messages.ERROR
            )
            return
        credited = skipped = 0
        for payment in queryset.order_by("pk"):
            if payment.provider != "mock" or payment.status != PaymentStatus.PENDING:
                skipped += 1
                continue
            try:
                done = payment_complete(
                    payment_id=payment.pk, source="admin_action", actor=request.user, request=request
                )
            except ApplicationError as exc:
                self.message_user(
                    request,
                    _("Payment %(id)s: %(error)s") % {"id": payment.pk, "error": exc.detail},
                    messages.ERROR,
                )
                continue
            credited += int(done.credited)
            skipped += int(not done.credited)
        self.message_user(
            request,
            _("Payments credited: %(credited)d; skipped (not pending or not mock): %(skipped)d.")
            % {"credited": credited, "skipped": skipped},
            messages.INFO,
        )


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    """Staff-maintained rates. A rate is history once payments used it: add a new one (with its
    `valid_from`) instead of editing; rows cannot be changed or deleted."""

    list_display = ("currency", "rate", "valid_from", "created_at", "created_by")
    list_filter = ("currency",)
    fields = ("currency", "rate", "valid_from")
    date_hierarchy = "valid_from"

    def get_changeform_initial_data(self, request):
        return {"valid_from": timezone.now()}

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from audit.services import audit_record, request_origin

        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_record(
            action="exchange_rate.create",
            actor=request.user,
            resource_type="exchange_rate",
            resource_id=obj.pk,
            details={
                "currency": obj.currency,
                "rate": str(obj.rate),
                "valid_from": obj.valid_from.isoformat(),
            },
            **request_origin(request),
        )
