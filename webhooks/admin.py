from django.contrib import admin, messages
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from webhooks import services
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from zenzefi.admin_search import IndexedSearchAdmin
from zenzefi.errors import ApplicationError

REPLAY_PERMISSION = "webhooks.replay_webhookdelivery"


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(IndexedSearchAdmin):
    """Endpoints are created by their owners (the secret is shown to them once); staff can
    disable or re-enable one. The secret is never shown here."""

    list_display = ("id", "user", "url", "is_active", "consecutive_failures", "failing_since", "created_at")
    list_filter = ("is_active",)
    search_fields = ("=user__username", "=user__email", "=url")
    search_user_fields = ("user",)
    search_exact_fields = ("url",)
    # The owners of the page's 50 rows in a second query by primary key: joined (select_related),
    # PostgreSQL hashed all 200 000 users before sorting and cutting the page (~170 ms).
    list_select_related = ()  # not False: Django would then join every foreign key shown

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("user")

    fields = (
        "user",
        "url",
        "events",
        "is_active",
        "created_at",
        "last_success_at",
        "last_failure_at",
        "failing_since",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
    )
    readonly_fields = tuple(f for f in fields if f != "is_active")

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        # Only `is_active` is editable: through the service (re-enabling restarts the failure
        # clock; audited), one row UPDATE, never the stale form values of the other columns.
        if change and "is_active" in form.changed_data:
            services.webhook_endpoint_set_active(
                endpoint_id=obj.pk, is_active=obj.is_active, actor=request.user, request=request
            )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "status_code", "succeeded", "error", "retry_in_seconds")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(IndexedSearchAdmin):
    """Read-only record of deliveries and their attempts; "Replay" sends one again."""

    list_display = ("id", "event", "endpoint", "status", "attempts", "last_status_code", "created_at")
    search_fields = ("=endpoint__user__username", "=endpoint__user__email", "=event_id")
    search_user_fields = ("endpoint__user",)
    search_exact_fields = ("event_id",)
    list_filter = ("status", "event", "created_at")
    # Sortable by indexed columns only (a sort by any other column reads the whole table twice:
    # the capped count and the page; docs/performance.md, admin sort and filter pass).
    sortable_by = ("id", "event", "endpoint", "created_at")
    list_select_related = ("endpoint",)
    inlines = [WebhookAttemptInline]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request):
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.action(description=gettext_lazy("Replay selected deliveries"), permissions=["replay"])
    def replay(self, request, queryset):
        done = 0
        for delivery_id in queryset.values_list("pk", flat=True):
            try:
                services.webhook_delivery_replay(delivery_id=delivery_id, actor=request.user, request=request)
                done += 1
            except ApplicationError as exc:
                self.message_user(
                    request,
                    _("Delivery %(id)s: %(error)s") % {"id": delivery_id, "error": exc.detail},
                    messages.WARNING,
                )
        if done:
            self.message_user(
                request,
                ngettext("%(count)d delivery queued again.", "%(count)d deliveries queued again.", done)
                % {"count": done},
                messages.SUCCESS,
            )
