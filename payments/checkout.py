"""The top-up provider seam used by the customer pages.

A page asks `checkout_start(...)` for the next step of a top-up and shows it; the provider
decides what that step is. Every top-up is a `payments.Payment` (SPEC §7) created through
`payments.services.payment_create` with the configured provider (PAYMENT_PROVIDER). With the
**mock** provider (while `MOCK_PAYMENTS_ENABLED`) the step is the local checkout page with
"pay" and "cancel" buttons (also reachable at the payment's `checkout_url`); "pay" completes
the payment, which credits it exactly once however often the button is submitted. With a real
provider the step is a redirect to its checkout URL, and its callback credits the payment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.urls import reverse

from currency.models import Transaction
from idempotency.services import Claim
from payments import services as payment_services
from payments.models import Payment, PaymentStatus
from payments.providers import TopupsUnavailable, get_provider
from zenzefi.errors import NotFound

__all__ = [
    "CheckoutNotFound",
    "CheckoutStep",
    "TopupsUnavailable",
    "checkout_resume",
    "checkout_start",
    "mock_checkout_amount",
    "mock_checkout_finish",
    "mock_checkout_step",
    "topups_available",
]


class CheckoutNotFound(NotFound):
    code = "checkout_not_found"
    default_detail = "This checkout is finished or unknown."


@dataclass(frozen=True)
class CheckoutStep:
    """What the page does next: render `template` with `context`, or redirect to `redirect_url`."""

    provider: str
    template: str = ""
    context: dict = field(default_factory=dict)
    redirect_url: str = ""
    payment: Payment | None = None


def topups_available() -> bool:
    try:
        return get_provider().available()
    except Exception:  # an unknown PAYMENT_PROVIDER: no top-ups rather than a crash
        return False


def checkout_start(
    *, request, amount: Decimal, currency: str | None = None, claim: Claim | None = None
) -> CheckoutStep:
    """Begin a top-up of `amount` for the signed-in user (400 for a bad amount). `claim`: the
    form nonce's idempotency claim (a resent form resumes the payment it started)."""
    if not topups_available():
        raise TopupsUnavailable()
    payment = payment_services.payment_create(
        user=request.user, amount=amount, currency=currency, request=request, claim=claim
    )
    return _step_for(request=request, payment=payment)


def _step_for(*, request, payment: Payment) -> CheckoutStep:
    if payment.provider != "mock":
        return CheckoutStep(provider=payment.provider, redirect_url=payment.checkout_url, payment=payment)
    return mock_checkout_step(request=request, payment=payment)


def mock_checkout_step(*, request, payment: Payment) -> CheckoutStep:
    """The mock provider's checkout page of a pending payment (the top-up page's answer and the
    page at the payment's `checkout_url` show the same one)."""
    return CheckoutStep(
        provider="mock",
        template="currency/mock_checkout.html",
        context={
            "checkout_id": payment.provider_payment_id,
            "amount": payment.amount,
            "balance_after": request.user.balance + payment.amount,
            "action_url": reverse("currency:mock-checkout"),
            "payment": payment,
        },
        payment=payment,
    )


def checkout_resume(*, request, payment_id: int) -> tuple[Payment | None, CheckoutStep | None]:
    """A top-up form sent again: the payment it started and, while that payment is still
    pending, the same checkout step again (no second payment)."""
    payment = Payment.objects.filter(pk=payment_id, user=request.user).first()
    if payment is None or payment.status != PaymentStatus.PENDING:
        return payment, None
    return payment, _step_for(request=request, payment=payment)


def _pending_mock_payment(*, request, checkout_id: str):
    try:
        payment = payment_services.mock_payment_for(user=request.user, provider_payment_id=checkout_id)
    except payment_services.PaymentNotFound:
        raise CheckoutNotFound() from None
    if payment.status != PaymentStatus.PENDING:
        raise CheckoutNotFound()
    return payment


def mock_checkout_amount(*, request, checkout_id: str) -> Decimal:
    return _pending_mock_payment(request=request, checkout_id=checkout_id).amount


def mock_checkout_finish(*, request, checkout_id: str, pay: bool) -> Transaction | None:
    """ "pay" credits the payment once (a DEPOSIT through the ledger); "cancel" cancels it."""
    if not get_provider("mock").available():
        raise TopupsUnavailable()
    _pending_mock_payment(request=request, checkout_id=checkout_id)
    done = payment_services.mock_checkout_submit(
        user=request.user, provider_payment_id=checkout_id, pay=pay, request=request
    )
    if not pay:
        return None
    if not done.credited:
        raise CheckoutNotFound()
    return done.payment.deposit
