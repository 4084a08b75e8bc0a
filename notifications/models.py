from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class NotificationKind(models.TextChoices):
    TOKEN_EXPIRING = "token_expiring", _("Token expiring soon")
    BALANCE_LOW = "balance_low", _("Balance low")
    REFERRAL_BONUS = "referral_bonus", _("Referral bonus")
    AUTO_RENEW_DONE = "auto_renew_done", _("Auto-renewal done")
    AUTO_RENEW_FAILED = "auto_renew_failed", _("Auto-renewal failed")
    PAYMENT_RECEIVED = "payment_received", _("Payment received")


class EmailStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    RETRYING = "retrying", _("Waiting to retry")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped (no email address)")


class Notification(models.Model):
    """One notification to one user: the record that it was decided (the de-duplication rules
    rest on these rows) and the state of its email. Written by `notifications.services` only.

    `dedupe_key` is unique: a notification that must go out once (e.g. one "expiring soon" per
    token) carries a key, and a second insert with the same key fails instead of sending twice.
    `context` holds JSON-safe template values (ISO datetimes in keys ending with `_at`).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("user"),
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices, verbose_name=_("kind"))
    dedupe_key = models.CharField(
        max_length=128, unique=True, null=True, blank=True, editable=False, verbose_name=_("dedupe key")
    )
    context = models.JSONField(default=dict, blank=True, verbose_name=_("context"))
    language = models.CharField(max_length=8, blank=True, default="", verbose_name=_("language"))
    email_status = models.CharField(
        max_length=16,
        choices=EmailStatus.choices,
        default=EmailStatus.PENDING,
        verbose_name=_("email status"),
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("attempts"))
    last_error = models.CharField(max_length=500, blank=True, default="", verbose_name=_("last error"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sent at"))
    # The outbox engine's lease and schedule (`zenzefi.outbox`), as on webhook deliveries.
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    claimed_until = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("claimed until")
    )
    # A database default too: the expiring-soon job inserts rows in raw SQL naming its columns.
    claimed_by = models.CharField(
        max_length=255, blank=True, default="", db_default="", editable=False, verbose_name=_("claimed by")
    )

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "kind", "created_at"]),
            models.Index(fields=["email_status", "created_at"], name="notif_email_status_idx"),  # sweeper
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.user_id} ({self.email_status})"
