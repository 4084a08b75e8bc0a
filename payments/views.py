"""Customer top-up pages (the `payments` app owns top-up end to end).

- `topup` (`currency:topup`, /account/topup/): the amount form; its POST starts a payment and
  shows the provider's checkout step (the mock checkout page, or a redirect to a real provider).
- `mock_checkout` (`payments:mock-checkout`, /payments/mock/<id>/): the mock provider's checkout
  page at a payment's `checkout_url` (only while MOCK_PAYMENTS_ENABLED).
- `mock_checkout_submit` (`currency:mock-checkout`, /account/topup/mock/): that page's "pay" /
  "cancel" buttons, which complete the payment through `payments.services`.
- `payment_return` (`payments:return`): where a real provider sends the customer back.
"""

from __future__ import annotations

import contextlib
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.templatetags.pages import money
from idempotency.services import InvalidPageNonce, page_action_once, page_nonce_issue, page_nonce_key
from payments import checkout
from payments.forms import TopUpForm
from payments.models import Payment, PaymentStatus
from payments.services import PaymentNotFound, mock_payment_for, payment_refresh
from tokens.views import already_made, form_nonce, invalid_nonce_message
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message

START_ACTION = "topup.start"
PAY_ACTION = "topup.pay"


def _amount_error(exc: ApplicationError) -> str:
    if exc.code == "payment_provider_error":
        return _(
            "The payment provider could not be reached. Nothing was charged: send the form again to retry."
        )
    if exc.code == "idempotency_in_progress":
        return _("This top-up is already being started. Wait a moment, then send the form again.")
    if exc.code == "invalid_amount":
        return _("Enter an amount between %(min)s and %(max)s ZNC with at most two decimals.") % {
            "min": money(settings.TOPUP_MIN_AMOUNT),
            "max": money(settings.TOPUP_MAX_AMOUNT),
        }
    return page_error_message(exc)


def checkout_nonce(request: HttpRequest, checkout_id: str) -> str:
    """The mock checkout's pay nonce is bound to its checkout: every rendering of one checkout
    (a reload, the back button) carries the same nonce, so it pays once."""
    return page_nonce_issue(user=request.user, action=PAY_ACTION, key=checkout_id)


def _show_step(request: HttpRequest, step: checkout.CheckoutStep) -> HttpResponse:
    if step.redirect_url:
        return redirect(step.redirect_url)
    context = {**step.context, "nonce": checkout_nonce(request, step.context["checkout_id"])}
    return render(request, step.template, context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def topup(request: HttpRequest) -> HttpResponse:
    """GET: the amount form. POST: the provider's checkout step (the mock checkout page). The
    amount form carries a one-time nonce recorded with the payment it starts: the same form sent
    again shows that payment's checkout again (or says it was already paid), never a second one.
    The provider is called outside any database transaction (`payment_create`): the nonce's
    record is claimed and committed first, so a concurrent second submission is told it is in
    progress, and a form resent after a provider error resumes the same payment."""
    if not checkout.topups_available():
        return render(request, "currency/topup_unavailable.html")
    user = request.user
    form = TopUpForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():

        def start(claim):
            step = checkout.checkout_start(
                request=request,
                amount=form.cleaned_data["amount"],
                currency=form.cleaned_data.get("currency") or None,
                claim=claim,
            )
            return step, {"payment": step.payment.pk, "total": str(step.payment.amount)}

        try:
            outcome = page_action_once(
                user=user,
                action=START_ACTION,
                nonce=request.POST.get("nonce"),
                perform=start,
                outside_transaction=True,
            )
        except InvalidPageNonce:
            form.add_error(None, invalid_nonce_message())
            status = 400
        except ApplicationError as exc:
            form.add_error("amount", _amount_error(exc))
            status = exc.status_code
        else:
            if not outcome.replayed:
                return _show_step(request, outcome.result)
            payment, step = checkout.checkout_resume(request=request, payment_id=outcome.reference["payment"])
            if step is not None:
                return _show_step(request, step)
            if payment is not None and payment.status == PaymentStatus.SUCCEEDED:
                user.refresh_from_db(fields=["balance"])
                return already_made(request, outcome=outcome, kind="topup")
            messages.info(request, _("This top-up was cancelled. Nothing was charged."))
            return redirect("currency:topup")
    elif request.method == "POST":
        status = 400
    context = {"form": form, "nonce": form_nonce(request, START_ACTION)}
    return render(request, "currency/topup.html", context, status=status)


@login_required
@never_cache
def mock_checkout(request: HttpRequest, provider_payment_id: str) -> HttpResponse:
    """The mock provider's checkout page (GET); its form posts to `mock_checkout_submit`."""
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
    return _show_step(request, checkout.mock_checkout_step(request=request, payment=payment))


@login_required
@require_POST
def mock_checkout_submit(request: HttpRequest) -> HttpResponse:
    """The mock provider's "pay" / "cancel" buttons. "Pay" runs once per checkout nonce: a
    repeat (reload, back-and-submit, double click) says the payment was already made."""
    checkout_id = request.POST.get("checkout_id", "")
    pay = request.POST.get("action") == "pay"
    nonce = request.POST.get("nonce")

    def finish():
        row = checkout.mock_checkout_finish(request=request, checkout_id=checkout_id, pay=pay)
        return row, {"payment": checkout_id, "total": str(row.amount) if row is not None else None}

    try:
        if page_nonce_key(user=request.user, action=PAY_ACTION, nonce=nonce) != checkout_id:
            raise InvalidPageNonce()
        if pay:
            outcome = page_action_once(user=request.user, action=PAY_ACTION, nonce=nonce, perform=finish)
        else:
            row, outcome = finish()[0], None
    except InvalidPageNonce:
        messages.error(
            request,
            _("This checkout form is not valid or has expired. Nothing was charged: please start again."),
        )
        return redirect("currency:topup")
    except checkout.CheckoutNotFound:
        messages.error(request, _("This checkout is finished or unknown. Nothing was charged."))
        return redirect("currency:topup")
    except ApplicationError as exc:
        messages.error(request, page_error_message(exc))
        return redirect("currency:topup")
    if outcome is not None and outcome.replayed:
        request.user.refresh_from_db(fields=["balance"])
        return already_made(request, outcome=outcome, kind="topup")
    row = outcome.result if outcome is not None else None
    if row is None:
        messages.info(request, _("Top-up cancelled. Nothing was charged."))
        return redirect("currency:topup")
    messages.success(
        request,
        _("Top-up of %(amount)s ZNC received. Balance: %(balance)s ZNC.")
        % {"amount": money(row.amount), "balance": money(row.balance_after)},
    )
    return redirect("accounts:dashboard")


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
