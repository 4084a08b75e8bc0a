from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class GiftCode(models.Model):
    """A prepaid token as a gift: bought (and charged) now, redeemed later into a token on the
    redeemer's account. The code is shown once to the buyer; only its SHA-256 digest is stored.
    `redeemed_at` is set by one conditional UPDATE, so a code is redeemed at most once."""

    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="gifts_bought",
        verbose_name=_("buyer"),
    )
    digest = models.CharField(max_length=64, unique=True, editable=False, verbose_name=_("digest"))
    prefix = models.CharField(max_length=4, editable=False, verbose_name=_("prefix"))
    duration_hours = models.PositiveIntegerField(verbose_name=_("duration, hours"))
    scope = models.CharField(max_length=32, verbose_name=_("scope"))
    price = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("price"))
    purchase = models.OneToOneField(
        "currency.Transaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("purchase"),
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))
    expires_at = models.DateTimeField(db_index=True, verbose_name=_("expires at"))
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gifts_redeemed",
        verbose_name=_("redeemed by"),
    )
    redeemed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("redeemed at"))
    token = models.OneToOneField(
        "tokens.AccessToken",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gift",
        verbose_name=_("token"),
    )

    class Meta:
        verbose_name = _("gift code")
        verbose_name_plural = _("gift codes")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gt=0), name="gift_price_positive"),
            models.CheckConstraint(
                condition=models.Q(redeemed_at__isnull=True, redeemed_by__isnull=True)
                | models.Q(redeemed_at__isnull=False, redeemed_by__isnull=False),
                name="gift_redeemed_with_redeemer",
            ),
        ]

    def __str__(self) -> str:
        return f"Gift {self.prefix}… ({self.duration_hours} h, {self.scope})"

    def status(self, now=None) -> str:
        from django.utils import timezone

        if self.redeemed_at is not None:
            return "redeemed"
        if self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"
