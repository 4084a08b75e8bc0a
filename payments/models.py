from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    CANCELED = "canceled", "Canceled"


class Currency(models.TextChoices):
    ZNC = "ZNC", "ZNC"
    RUB = "RUB", "Russian rouble"
    USD = "USD", "US dollar"
    EUR = "EUR", "Euro"


# Currencies with a staff-maintained rate (ZNC is the ledger unit: its rate is always 1).
RATED_CURRENCIES = (Currency.RUB, Currency.USD, Currency.EUR)


class ExchangeRate(models.Model):
    """ZNC per one unit of `currency`, valid from `valid_from` until the next rate of that
    currency. Staff add rates in the admin; old rates are kept (payments record the rate used)."""

    currency = models.CharField(
        max_length=3, choices=[(c.value, c.label) for c in RATED_CURRENCIES], db_index=True
    )
    rate = models.DecimalField(max_digits=18, decimal_places=8, help_text="ZNC per one unit of the currency.")
    valid_from = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
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

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=32, db_index=True)
    provider_payment_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, help_text="ZNC credited on success.")
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.ZNC)
    original_amount = models.DecimalField(
        max_digits=14, decimal_places=2, help_text="Charged by the provider, in `currency`."
    )
    exchange_rate = models.DecimalField(
        max_digits=18, decimal_places=8, default=Decimal("1"), help_text="ZNC per one unit of `currency`."
    )
    status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING, db_index=True
    )
    checkout_url = models.URLField(max_length=2000, blank=True, default="")
    deposit = models.OneToOneField(
        "currency.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="payment"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
