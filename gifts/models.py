from django.conf import settings
from django.db import models


class GiftCode(models.Model):
    """A prepaid token as a gift: bought (and charged) now, redeemed later into a token on the
    redeemer's account. The code is shown once to the buyer; only its SHA-256 digest is stored.
    `redeemed_at` is set by one conditional UPDATE, so a code is redeemed at most once."""

    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gifts_bought")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=4, editable=False)
    duration_hours = models.PositiveIntegerField()
    scope = models.CharField(max_length=32)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    purchase = models.OneToOneField(
        "currency.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gifts_redeemed",
    )
    redeemed_at = models.DateTimeField(null=True, blank=True)
    token = models.OneToOneField(
        "tokens.AccessToken", null=True, blank=True, on_delete=models.PROTECT, related_name="gift"
    )

    class Meta:
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
