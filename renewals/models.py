from django.db import models
from django.utils.translation import gettext_lazy as _


class TokenRenewal(models.Model):
    """One auto-renewal of one token period: `period_end` is the expiry that was extended (to
    `new_expires_at`), unique per token, so a period is renewed at most once however often and
    however concurrently the job runs. Written by `renewals.services` with its PURCHASE row."""

    token = models.ForeignKey(
        "tokens.AccessToken", on_delete=models.CASCADE, related_name="renewals", verbose_name=_("token")
    )
    period_end = models.DateTimeField(verbose_name=_("period end"))
    new_expires_at = models.DateTimeField(verbose_name=_("new expires at"))
    price = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("price"))
    transaction = models.OneToOneField(
        "currency.Transaction", on_delete=models.PROTECT, related_name="+", verbose_name=_("transaction")
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("token renewal")
        verbose_name_plural = _("token renewals")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["token", "period_end"], name="token_renewal_once_per_period"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="token_renewal_price_positive"),
        ]

    def __str__(self) -> str:
        return (
            f"token {self.token_id}: {self.period_end:%Y-%m-%d %H:%M} → {self.new_expires_at:%Y-%m-%d %H:%M}"
        )
