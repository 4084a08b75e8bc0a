import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

EVENTS = (
    "token.purchased",
    "token.activated",
    "token.expiring",
    "token.expired",
    "token.revoked",
    "token.renewed",
    "balance.low",
    "payment.succeeded",
    "referral.bonus",
)


class WebhookEndpoint(models.Model):
    """A customer's receiver URL and the events it wants.

    The signing secret is never stored: it is derived from WEBHOOK_SIGNING_KEY, the endpoint's
    `uid` and a random `secret_salt` (see `webhooks.signing`), so a copy of the database alone
    reveals no secret. Failure tracking: `failing_since` is set by the first failed attempt after
    a success and cleared by the next success; failing for WEBHOOK_DISABLE_AFTER_DAYS disables
    the endpoint (`disabled_at`, `disabled_reason`).
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UID"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        verbose_name=_("user"),
    )
    url = models.URLField(max_length=2000, verbose_name=_("URL"))
    events = models.JSONField(default=list, verbose_name=_("events"))
    secret_salt = models.CharField(max_length=64, editable=False, verbose_name=_("secret salt"))
    is_active = models.BooleanField(default=True, verbose_name=_("active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("failing since")
    )
    consecutive_failures = models.PositiveIntegerField(
        default=0, editable=False, verbose_name=_("consecutive failures")
    )
    last_success_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("last success at")
    )
    last_failure_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("last failure at")
    )
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("disabled at"))
    disabled_reason = models.CharField(
        max_length=255, blank=True, default="", editable=False, verbose_name=_("disabled reason")
    )

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "is_active"])]

    def __str__(self) -> str:
        return f"{self.url} ({self.user_id})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    RETRYING = "retrying", _("Waiting to retry")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class WebhookDelivery(models.Model):
    """One event for one endpoint. `event_id` is the Standard-Webhooks `webhook-id`: the same on
    every attempt and on a staff replay, so receivers can de-duplicate."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    event = models.CharField(max_length=32, db_index=True, verbose_name=_("event"))
    event_id = models.CharField(max_length=64, db_index=True, editable=False, verbose_name=_("event ID"))
    payload = models.JSONField(verbose_name=_("payload"))
    status = models.CharField(
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        verbose_name=_("status"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    last_status_code = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("last status code"))
    last_response = models.TextField(blank=True, default="", verbose_name=_("last response"))
    last_error = models.CharField(max_length=500, blank=True, default="", verbose_name=_("last error"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    claimed_until = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("claimed until")
    )
    # Who holds the lease: "<Celery task id>:<retries>" of the message that claimed it. The
    # same message redelivered after its worker died may take the lease over at once.
    claimed_by = models.CharField(
        max_length=255, blank=True, default="", editable=False, verbose_name=_("claimed by")
    )
    replay_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("replay of"),
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))

    class Meta:
        verbose_name = _("webhook delivery")
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("webhook deliveries")
        permissions = [("replay_webhookdelivery", "Can replay webhook deliveries from the admin")]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """Every attempt of a delivery, as it happened."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery")
    )
    number = models.PositiveIntegerField(verbose_name=_("number"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    duration_ms = models.PositiveIntegerField(default=0, verbose_name=_("duration, ms"))
    status_code = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("status code"))
    response_body = models.TextField(blank=True, default="", verbose_name=_("response body"))
    error = models.CharField(max_length=500, blank=True, default="", verbose_name=_("error"))
    succeeded = models.BooleanField(default=False, verbose_name=_("succeeded"))
    retry_in_seconds = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("retry in, seconds"))

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
