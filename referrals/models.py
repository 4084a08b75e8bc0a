from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ReferralBonus(models.Model):
    """The durable record that a referred user qualified (SPEC §6): one row per referred user,
    ever (unique), written in the same transaction as the deposit that qualified and the bonus."""

    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="referral_bonuses",
        verbose_name=_("referrer"),
    )
    referred = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="referral_qualification",
        verbose_name=_("referred"),
    )
    deposit = models.OneToOneField(
        "currency.Transaction",
        on_delete=models.PROTECT,
        related_name="referral_qualification",
        verbose_name=_("deposit"),
    )
    bonus = models.OneToOneField(
        "currency.Transaction", on_delete=models.PROTECT, related_name="+", verbose_name=_("bonus")
    )
    deposit_amount = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("deposit amount"))
    amount = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("amount"))
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("referral bonus")
        verbose_name_plural = _("referral bonuses")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="referral_bonus_positive")
        ]

    def __str__(self) -> str:
        return f"{self.amount} ZNC to {self.referrer_id} for {self.referred_id}"
