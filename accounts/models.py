from __future__ import annotations

import secrets
from decimal import Decimal

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

REFERRAL_CODE_LENGTH = 12
# Upper-case letters and digits without the look-alikes 0/O and 1/I/L.
REFERRAL_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERRAL_CODE_ATTEMPTS = 8
# Written only through the ledger services, never by a model save.
MONEY_FIELDS = frozenset({"balance", "referral_bonus_earned"})
# The partial index of low balances covers this threshold; a LOW_BALANCE_THRESHOLD above it still
# works, without the index. Changing it needs a migration (the index's predicate).
LOW_BALANCE_INDEX_THRESHOLD = Decimal("10")


def generate_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))


class Tier(models.TextChoices):
    FREE = "free", _("Free")
    PREMIUM = "premium", _("Premium")
    ENTERPRISE = "enterprise", _("Enterprise")


class Language(models.TextChoices):
    RU = "ru", _("Русский")
    EN = "en", _("English")


class ZenzefiUserManager(UserManager):
    def get_by_natural_key(self, username):
        # Usernames are unique case-insensitively; log in with any case.
        return self.get(username__iexact=username)


class User(AbstractUser):
    first_name = None
    last_name = None

    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(max_length=255, blank=True, default="", verbose_name=_("full name"))
    balance = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0.00"), editable=False, verbose_name=_("balance")
    )
    referral_code = models.CharField(
        max_length=REFERRAL_CODE_LENGTH, unique=True, editable=False, verbose_name=_("referral code")
    )
    referred_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referrals",
        verbose_name=_("referred by"),
    )
    referral_bonus_earned = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        editable=False,
        verbose_name=_("referral bonus earned"),
    )
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE, verbose_name=_("tier"))
    language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.RU, verbose_name=_("language")
    )
    # Auto-renewal keeps at least this much on the balance (a renewal that would leave less is skipped).
    auto_renew_min_balance = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        verbose_name=_("auto-renewal: keep at least"),
    )
    # Which notification emails the user wants (SPEC §11, §14). Webhooks are not affected, and the
    # notification itself is still recorded (its de-duplication rules rest on those rows).
    notify_token_expiring = models.BooleanField(_("email: token expiring soon"), default=True)
    notify_low_balance = models.BooleanField(_("email: balance low"), default=True)
    notify_renewal = models.BooleanField(_("email: auto-renewal done or failed"), default=True)
    notify_payment = models.BooleanField(_("email: payment received"), default=True)

    objects = ZenzefiUserManager()

    REQUIRED_FIELDS = ["email"]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [("adjust_balance", "Can adjust a user's balance (writes an ADJUSTMENT)")]
        indexes = [
            models.Index(fields=["date_joined", "id"], name="user_date_joined_idx"),  # staff lists
            models.Index(fields=["referred_by", "date_joined", "id"], name="user_referred_joined_idx"),
            models.Index(
                fields=["id"], condition=models.Q(is_active=False), name="user_inactive_idx"
            ),  # gauges
            # The low-balance job (notifications.services.notify_low_balance) walks the active
            # users below LOW_BALANCE_INDEX_THRESHOLD (the default LOW_BALANCE_THRESHOLD) in id
            # order through this small index instead of the primary key's 200 000 rows.
            models.Index(
                fields=["id"],
                condition=models.Q(is_active=True, balance__lt=LOW_BALANCE_INDEX_THRESHOLD),
                name="user_low_balance_idx",
            ),
            # The admin user list's rare filter choices (staff, superusers, a paid tier), newest
            # first: without them a choice with few or no users walked all of `date_joined`.
            models.Index(
                fields=["date_joined", "id"], condition=models.Q(is_staff=True), name="user_staff_idx"
            ),
            models.Index(
                fields=["date_joined", "id"], condition=models.Q(is_superuser=True), name="user_superuser_idx"
            ),
            models.Index(fields=["tier", "date_joined", "id"], name="user_tier_joined_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="user_balance_non_negative"),
            models.CheckConstraint(
                condition=models.Q(referral_bonus_earned__gte=0), name="user_referral_bonus_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(auto_renew_min_balance__gte=0), name="user_auto_renew_min_balance_gte_0"
            ),
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.username

    def save(self, *args, **kwargs):
        if self.email:
            self.email = self.__class__.objects.normalize_email(self.email).lower()
        if self._state.adding and not self.referral_code:
            return self._save_with_new_referral_code(*args, **kwargs)
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            # A full-row save (profile form, password change, admin form) must never write the
            # money columns back from a stale instance: only currency.services.balance_change
            # (and the referral service, with F()) change them, under a row lock.
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name not in MONEY_FIELDS
            ]
        return super().save(*args, **kwargs)

    def _save_with_new_referral_code(self, *args, **kwargs):
        """Insert with a fresh random code; on the (rare) collision draw another one."""
        for attempt in range(REFERRAL_CODE_ATTEMPTS):
            self.referral_code = generate_referral_code()
            try:
                with transaction.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError as exc:
                if "referral_code" not in str(exc) or attempt == REFERRAL_CODE_ATTEMPTS - 1:
                    self.referral_code = ""
                    raise
        return None  # unreachable
