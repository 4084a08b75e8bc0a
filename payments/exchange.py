"""Multi-currency top-ups: staff-maintained rates (ZNC per unit) and Decimal conversion.

ZNC stays the only ledger unit. A top-up priced in RUB/USD/EUR is converted at the rate valid
now: `znc = original × rate`, rounded half-up to 0.01; the Payment records the rate used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from payments.models import RATED_CURRENCIES, Currency, ExchangeRate
from zenzefi.errors import InvalidInput
from zenzefi.money import CENT, to_money


@dataclass(frozen=True)
class Conversion:
    currency: str
    original_amount: Decimal  # in `currency`
    rate: Decimal  # ZNC per unit of `currency`
    znc_amount: Decimal


def validate_currency(currency: str | None) -> str:
    code = (currency or Currency.ZNC).strip().upper()
    if code not in Currency.values:
        raise InvalidInput(f"currency: must be one of {', '.join(Currency.values)}.", code="invalid_currency")
    return code


def _amount(value: Decimal) -> Decimal:
    if isinstance(value, float):
        raise TypeError("Money must not be a float.")
    value = Decimal(value)
    if not value.is_finite() or value <= 0:
        raise InvalidInput("amount: must be a positive number.", code="invalid_amount")
    if value != value.quantize(CENT):
        raise InvalidInput("amount: at most two decimal places.", code="invalid_amount")
    return value


def rate_current(currency: str, *, at: datetime | None = None) -> ExchangeRate:
    """The rate of `currency` valid at `at` (the newest one that has started); 400 without one."""
    rate = (
        ExchangeRate.objects.filter(currency=currency, valid_from__lte=at or timezone.now())
        .order_by("-valid_from", "-id")
        .first()
    )
    if rate is None:
        raise InvalidInput(f"currency: no exchange rate for {currency} yet.", code="no_exchange_rate")
    return rate


def convert_to_znc(*, amount: Decimal, currency: str, at: datetime | None = None) -> Conversion:
    """`amount` of `currency` → ZNC at the current rate (half-up to 0.01). ZNC converts 1:1."""
    currency = validate_currency(currency)
    amount = _amount(amount)
    if currency == Currency.ZNC:
        return Conversion(currency=currency, original_amount=amount, rate=Decimal("1"), znc_amount=amount)
    rate = rate_current(currency, at=at).rate
    return Conversion(
        currency=currency, original_amount=amount, rate=rate, znc_amount=to_money(amount * rate)
    )


def convert_from_znc(*, znc_amount: Decimal, currency: str, at: datetime | None = None) -> Conversion:
    """ZNC → the price in `currency` (half-up to 0.01): for providers that cannot charge ZNC."""
    currency = validate_currency(currency)
    znc_amount = _amount(znc_amount)
    if currency == Currency.ZNC:
        return Conversion(
            currency=currency, original_amount=znc_amount, rate=Decimal("1"), znc_amount=znc_amount
        )
    rate = rate_current(currency, at=at).rate
    original = (znc_amount / rate).quantize(CENT, rounding=ROUND_HALF_UP)
    if original <= 0:
        raise InvalidInput("amount: too small to charge in this currency.", code="invalid_amount")
    return Conversion(currency=currency, original_amount=original, rate=rate, znc_amount=znc_amount)


__all__ = ["RATED_CURRENCIES", "Conversion", "convert_from_znc", "convert_to_znc", "rate_current"]
