from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TransactionType(models.TextChoices):
    DEPOSIT = "DEPOSIT", _("Deposit")
    PURCHASE = "PURCHASE", _("Purchase")
    REFUND = "REFUND", _("Refund")
    REFERRAL_BONUS = "REFERRAL_BONUS", _("Referral bonus")
    ADJUSTMENT = "ADJUSTMENT", _("Adjustment (staff)")
    GIFT = "GIFT", _("Gift")


# Sales: the ledger rows that are revenue (`currency.selectors.sales`, `znc_revenue_total`):
# tokens, bundles and auto-renewals bought (PURCHASE) and gift codes bought (GIFT).
REVENUE_TYPES = (TransactionType.PURCHASE, TransactionType.GIFT)


class AppendOnlyError(Exception):
    """Ledger rows are never updated or deleted."""


class TransactionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Transactions are append-only.")

    def delete(self):
        raise AppendOnlyError("Transactions are append-only.")


class Transaction(models.Model):
    """One row per balance change, written by `currency.services.balance_change` only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="transactions",
        verbose_name=_("user"),
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("amount"))
    balance_after = models.DecimalField(max_digits=12, decimal_places=2, verbose_name=_("balance after"))
    type = models.CharField(
        max_length=20, choices=TransactionType.choices, db_index=True, verbose_name=_("type")
    )
    description = models.CharField(max_length=255, blank=True, default="", verbose_name=_("description"))
    reference = models.CharField(
        max_length=128, blank=True, default="", db_index=True, verbose_name=_("reference")
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))

    objects = TransactionQuerySet.as_manager()

    class Meta:
        verbose_name = _("transaction")
        verbose_name_plural = _("transactions")
        ordering = ["-created_at", "-id"]
        indexes = [
            # History pages: the ordering's full key, so a page is an index range (keyset).
            models.Index(fields=["user", "created_at", "id"], name="tx_user_created_id_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="transaction_amount_not_zero"),
            models.CheckConstraint(
                condition=models.Q(balance_after__gte=0), name="transaction_balance_after_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.amount} → {self.balance_after} ({self.user_id})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Transactions are append-only.")
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Transactions are append-only.")
