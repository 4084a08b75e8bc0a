from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# The admin's revoke actions and the staff API's force revoke (`DELETE admin/tokens/{id}`).
REVOKE_PERMISSION = "tokens.revoke_token"


class Scope(models.TextChoices):
    FULL = "full", _("Full access")
    CERTIFICATES_ONLY = "certificates_only", _("Certificates only")


class TokenState(models.TextChoices):
    NOT_ACTIVATED = "not_activated", _("Not activated")
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")


def token_digest(plaintext: str) -> str:
    """SHA-256 hex digest: the only form in which a token is stored or used as a cache key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


class AccessTokenQuerySet(models.QuerySet):
    def active(self, now=None):
        """THE meaning of "active token" everywhere (customer dashboard, admin filter, REST
        `active_only`, analytics `active_tokens`, the staff user list's `tokens_active`,
        `active_tokens_gauge`): activated, not expired, not revoked (`TokenState.ACTIVE`).
        A bought token waiting for its first use is "not activated"; "active or waiting" is
        `usable()`, named so. `expired_at IS NULL` adds nothing to the meaning (a running token
        is never marked expired) but lets PostgreSQL use the partial running-tokens index."""
        now = now or timezone.now()
        return self.filter(
            activated_at__isnull=False, revoked_at__isnull=True, expired_at__isnull=True, expires_at__gt=now
        )

    def not_activated(self):
        return self.filter(activated_at__isnull=True, revoked_at__isnull=True)

    def usable(self, now=None):
        """Not revoked and not expired, activated or not yet: what can still be used (and
        revoked with a refund, or switched to auto-renewal). Not "active" (see `active`)."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class AccessToken(models.Model):
    """A time-limited access token. The plaintext is shown once and never stored.

    `expires_at` is derived from `activated_at` (+ duration) by the activation service, the
    only writer of both; it stays null until the first successful proxy request.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="access_tokens",
        verbose_name=_("user"),
    )
    digest = models.CharField(max_length=64, unique=True, editable=False, verbose_name=_("digest"))
    prefix = models.CharField(max_length=8, editable=False, verbose_name=_("prefix"))
    duration_hours = models.PositiveIntegerField(verbose_name=_("duration, hours"))
    scope = models.CharField(
        max_length=32, choices=Scope.choices, default=Scope.FULL, verbose_name=_("scope")
    )
    cost = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("cost"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))
    activated_at = models.DateTimeField(null=True, blank=True, verbose_name=_("activated at"))
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, editable=False, verbose_name=_("expires at")
    )
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))
    refund_amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        editable=False,
        verbose_name=_("refund amount"),
    )
    expired_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text=_("When the expiry job processed the token."),
        verbose_name=_("expired at"),
    )
    auto_renew = models.BooleanField(default=False, verbose_name=_("auto-renewal"))
    # The expiring-soon job's watermark: the `expires_at` its notice was recorded for. A token
    # whose expiry differs (never announced, or moved by a renewal) is due again; a rerun reads
    # only those (partial index below) instead of probing every token in the window.
    expiring_notified_for = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("expiry the expiring notice was for")
    )
    bundle_purchase = models.CharField(
        max_length=64, blank=True, default="", editable=False, verbose_name=_("bundle purchase")
    )

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("access token")
        verbose_name_plural = _("access tokens")
        ordering = ["-created_at", "-id"]
        permissions = [("revoke_token", "Can revoke tokens from the admin")]
        indexes = [
            models.Index(fields=["user", "revoked_at", "expires_at"]),
            # The expiry, expiring-soon and renewal jobs: only running tokens (a small part).
            models.Index(
                fields=["expires_at"],
                condition=models.Q(expired_at__isnull=True, revoked_at__isnull=True),
                name="token_running_expiry_idx",
            ),
            # The expiring-soon job: running tokens whose current expiry is not announced yet.
            models.Index(
                fields=["expires_at", "id"],
                condition=models.Q(expired_at__isnull=True, revoked_at__isnull=True)
                & (
                    models.Q(expiring_notified_for__isnull=True)
                    | models.Q(expiring_notified_for__lt=models.F("expires_at"))
                    | models.Q(expiring_notified_for__gt=models.F("expires_at"))
                ),
                name="token_unannounced_expiry_idx",
            ),
            models.Index(fields=["prefix"], name="token_prefix_idx"),  # admin search
            # The admin's "not activated" list, newest first (bought, never used: often old).
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(activated_at__isnull=True, revoked_at__isnull=True),
                name="token_not_activated_idx",
            ),
            # The admin changelist (tokens/admin.py): every sort and filter choice reads an index.
            # Its sort by expiry descending, NULLs last, reads `token_expiry_desc_idx`
            # (expires_at DESC NULLS LAST, id DESC): PostgreSQL only (SQLite has no NULLS LAST
            # in an index), so created by migration 0008 outside the model state.
            # Filters "revoked", "expired" (activated, not revoked), auto-renewal on, by duration;
            # each newest first, as the changelist lists them (and counts them, capped).
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(revoked_at__isnull=False),
                name="token_revoked_idx",
            ),
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(activated_at__isnull=False, revoked_at__isnull=True),
                name="token_activated_live_idx",
            ),
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(auto_renew=True),
                name="token_auto_renew_idx",
            ),
            models.Index(fields=["duration_hours", "created_at", "id"], name="token_duration_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(cost__gte=0), name="token_cost_non_negative"),
            models.CheckConstraint(
                condition=models.Q(activated_at__isnull=True, expires_at__isnull=True)
                | models.Q(activated_at__isnull=False, expires_at__isnull=False),
                name="token_expires_with_activation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.duration_hours} h, {self.scope})"

    @property
    def duration(self) -> timedelta:
        return timedelta(hours=self.duration_hours)

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at:
            return TokenState.REVOKED
        if self.activated_at is None:
            return TokenState.NOT_ACTIVATED
        if self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE

    def time_left(self, now=None) -> timedelta | None:
        if self.expires_at is None:
            return None
        return max(self.expires_at - (now or timezone.now()), timedelta(0))
