from django.conf import settings
from django.db import models


class NotificationKind(models.TextChoices):
    TOKEN_EXPIRING = "token_expiring", "Token expiring soon"
    BALANCE_LOW = "balance_low", "Balance low"
    REFERRAL_BONUS = "referral_bonus", "Referral bonus"
    AUTO_RENEW_DONE = "auto_renew_done", "Auto-renewal done"
    AUTO_RENEW_FAILED = "auto_renew_failed", "Auto-renewal failed"
    PAYMENT_RECEIVED = "payment_received", "Payment received"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (no email address)"


class Notification(models.Model):
    """One notification to one user: the record that it was decided (the de-duplication rules
    rest on these rows) and the state of its email. Written by `notifications.services` only.

    `dedupe_key` is unique: a notification that must go out once (e.g. one "expiring soon" per
    token) carries a key, and a second insert with the same key fails instead of sending twice.
    `context` holds JSON-safe template values (ISO datetimes in keys ending with `_at`).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    dedupe_key = models.CharField(max_length=128, unique=True, null=True, blank=True, editable=False)
    context = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=8, blank=True, default="")
    email_status = models.CharField(max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "kind", "created_at"]),
            models.Index(fields=["email_status", "created_at"], name="notif_email_status_idx"),  # sweeper
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.user_id} ({self.email_status})"
