"""The mock provider's checkout page (only while MOCK_PAYMENTS_ENABLED): the page a payment's
`checkout_url` points to. Its "pay" / "cancel" form posts to the top-up page's mock checkout
handler (`currency:mock-checkout`), which completes the payment through `payments.services`."""

from __future__ import annotations

import contextlib
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from currency.views import checkout_nonce
from payments.models import Payment, PaymentStatus
from payments.services import PaymentNotFound, mock_payment_for, payment_refresh
from zenzefi.errors import ApplicationError


@login_required
@never_cache
def mock_checkout(request: HttpRequest, provider_payment_id: str) -> HttpResponse:
    if not settings.MOCK_PAYMENTS_ENABLED:
        raise Http404
    try:
        payment = mock_payment_for(user=request.user, provider_payment_id=provider_payment_id)
    except PaymentNotFound:
        raise Http404 from None
    if payment.status != PaymentStatus.PENDING:
        messages.info(request, _("This checkout is finished or unknown. Nothing was charged."))
        return redirect("currency:topup")
    request.user.refresh_from_db(fields=["balance"])
    context = {
        "checkout_id": payment.provider_payment_id,
        "amount": payment.amount,
        "balance_after": request.user.balance + payment.amount,
        "action_url": reverse("currency:mock-checkout"),
        "payment": payment,
        "nonce": checkout_nonce(request, payment.provider_payment_id),
    }
    return render(request, "currency/mock_checkout.html", context)


@login_required
@never_cache
def payment_return(request: HttpRequest, uid: str) -> HttpResponse:
    """Where a real provider sends the customer back: check the payment's status with the
    provider at once (its notification may still be on the way) and say how it went."""
    payment = Payment.objects.filter(uid=uid, user=request.user).first() if _is_uuid(uid) else None
    if payment is None:
        raise Http404
    # An unreachable provider is no error here: its notification completes the payment later.
    with contextlib.suppress(ApplicationError):
        payment = payment_refresh(payment=payment, request=request)
    if payment.status == PaymentStatus.SUCCEEDED:
        messages.success(
            request, _("Payment received: %(amount)s ZNC credited.") % {"amount": payment.amount}
        )
        return redirect("accounts:dashboard")
    if payment.status == PaymentStatus.CANCELED:
        messages.info(request, _("The payment was cancelled. Nothing was charged."))
    else:
        messages.info(
            request, _("Your payment is being processed; the balance updates once it is confirmed.")
        )
    return redirect("currency:topup")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
