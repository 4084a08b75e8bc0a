from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from payments.models import RATED_CURRENCIES, ExchangeRate, Payment
from payments.services import PaymentNotFound


def payment_get(*, user: User, payment_id: int) -> Payment:
    payment = Payment.objects.filter(pk=payment_id, user=user).first()
    if payment is None:
        raise PaymentNotFound()
    return payment


def payment_list(*, user: User) -> QuerySet[Payment]:
    return Payment.objects.filter(user=user).order_by("-created_at", "-id")


def rates_current() -> list[ExchangeRate]:
    now = timezone.now()
    rates = []
    for currency in RATED_CURRENCIES:
        rate = (
            ExchangeRate.objects.filter(currency=currency, valid_from__lte=now)
            .order_by("-valid_from", "-id")
            .first()
        )
        if rate is not None:
            rates.append(rate)
    return rates
