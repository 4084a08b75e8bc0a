from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class PaymentStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    CANCELED = "canceled", _("Canceled")


class Currency(models.TextChoices):
    ZNC = "ZNC", _("ZNC")
    RUB = "RUB", _("Russian rouble")
    USD = "USD", _("US dollar")
    EUR = "EUR", _("Euro")


# Currencies with a staff-maintained rate (ZNC is the ledger unit: its rate is always 1).
RATED_CURRENCIES = (Currency.RUB, Currency.USD, Currency.EUR)


class ExchangeRate(models.Model):
    """ZNC per one unit of `currency`, valid from `valid_from` until the next rate of that
    currency. Staff add rates in the admin; old rates are kept (payments record the rate used)."""

    currency = models.CharField(
        max_length=3,
        choices=[(c.value, c.label) for c in RATED_CURRENCIES],
        db_index=True,
        verbose_name=_("currency"),
    )
    rate = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        help_text=_("ZNC per one unit of the currency."),
        verbose_name=_("rate"),
    )
    valid_from = models.DateTimeField(db_index=True, verbose_name=_("valid from"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("exchange rate")
        verbose_name_plural = _("exchange rates")
        ordering = ["currency", "-valid_from", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="exchange_rate_positive"),
            models.UniqueConstraint(fields=["currency", "valid_from"], name="exchange_rate_unique_start"),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.rate} ZNC from {self.valid_from:%Y-%m-%d %H:%M}"


# Completing a pending mock payment by hand: the admin action and
# `POST currency/admin/simulate-payment/{id}`.
COMPLETE_PERMISSION = "payments.complete_payment"


class Payment(models.Model):
    """A top-up through a payment provider. `amount` is what the ledger is credited (ZNC);
    `currency`/`original_amount` is what the customer is charged, at `exchange_rate` ZNC per unit.

    The status moves pending → succeeded (credited once, `deposit` is that ledger row) or
    pending → canceled, by conditional UPDATEs in `payments.services`; nothing else writes it.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name=_("UID"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments", verbose_name=_("user")
    )
    provider = models.CharField(max_length=32, db_index=True, verbose_name=_("provider"))
    provider_payment_id = models.CharField(
        max_length=128, blank=True, default="", db_index=True, verbose_name=_("provider payment ID")
    )
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, help_text=_("ZNC credited on success."), verbose_name=_("amount")
    )
    currency = models.CharField(
        max_length=3, choices=Currency.choices, default=Currency.ZNC, verbose_name=_("currency")
    )
    original_amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        help_text=_("Charged by the provider, in `currency`."),
        verbose_name=_("original amount"),
    )
    exchange_rate = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        default=Decimal("1"),
        help_text=_("ZNC per one unit of `currency`."),
        verbose_name=_("exchange rate"),
    )
    status = models.CharField(
        max_length=16,
        choices=PaymentStatus.choices,
        default=PaymentStatus.PENDING,
        db_index=True,
        verbose_name=_("status"),
    )
    checkout_url = models.URLField(max_length=2000, blank=True, default="", verbose_name=_("checkout URL"))
    deposit = models.OneToOneField(
        "currency.Transaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payment",
        verbose_name=_("deposit"),
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("created at"))
    completed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("completed at"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-id"]
        permissions = [("complete_payment", "Can complete a pending mock payment by hand")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(original_amount__gt=0), name="payment_original_amount_positive"
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_payment_id"],
                condition=~models.Q(provider_payment_id=""),
                name="payment_provider_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment {self.pk} {self.amount} ZNC ({self.provider}, {self.status})"
