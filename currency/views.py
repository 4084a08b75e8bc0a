"""Customer money pages: top up (through the provider seam in currency.payments) and history."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.templatetags.pages import money
from currency import payments, selectors
from currency.descriptions import describe
from currency.page_forms import TopUpForm, TransactionFilterForm
from idempotency.services import InvalidPageNonce, page_action_once, page_nonce_issue, page_nonce_key
from payments.models import PaymentStatus
from tokens.views import already_made, form_nonce, invalid_nonce_message
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message
from zenzefi.pagination import DeferredJoinPaginator

PAGE_SIZE = 20


def _amount_error(exc: ApplicationError) -> str:
    if exc.code == "invalid_amount":
        return _("Enter an amount between %(min)s and %(max)s ZNC with at most two decimals.") % {
            "min": money(settings.TOPUP_MIN_AMOUNT),
            "max": money(settings.TOPUP_MAX_AMOUNT),
        }
    return page_error_message(exc)


START_ACTION = "topup.start"
PAY_ACTION = "topup.pay"


def checkout_nonce(request: HttpRequest, checkout_id: str) -> str:
    """The mock checkout's pay nonce is bound to its checkout: every rendering of one checkout
    (a reload, the back button) carries the same nonce, so it pays once."""
    return page_nonce_issue(user=request.user, action=PAY_ACTION, key=checkout_id)


def _show_step(request: HttpRequest, step: payments.CheckoutStep) -> HttpResponse:
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
    again shows that payment's checkout again (or says it was already paid), never a second one."""
    if not payments.topups_available():
        return render(request, "currency/topup_unavailable.html")
    user = request.user
    form = TopUpForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():

        def start():
            step = payments.checkout_start(
                request=request,
                amount=form.cleaned_data["amount"],
                currency=form.cleaned_data.get("currency") or None,
            )
            return step, {"payment": step.payment.pk, "total": str(step.payment.amount)}

        try:
            outcome = page_action_once(
                user=user, action=START_ACTION, nonce=request.POST.get("nonce"), perform=start
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
            payment, step = payments.checkout_resume(request=request, payment_id=outcome.reference["payment"])
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
@require_POST
def mock_checkout(request: HttpRequest) -> HttpResponse:
    """The mock provider's "pay" / "cancel" buttons. "Pay" runs once per checkout nonce: a
    repeat (reload, back-and-submit, double click) says the payment was already made."""
    checkout_id = request.POST.get("checkout_id", "")
    pay = request.POST.get("action") == "pay"
    nonce = request.POST.get("nonce")

    def finish():
        row = payments.mock_checkout_finish(request=request, checkout_id=checkout_id, pay=pay)
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
    except payments.CheckoutNotFound:
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
def transactions(request: HttpRequest) -> HttpResponse:
    form = TransactionFilterForm(request.GET or None)
    transaction_type = form.cleaned_data["type"] or None if form.is_valid() else None
    qs = selectors.transaction_list(user=request.user, transaction_type=transaction_type)
    page = DeferredJoinPaginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    describe(page.object_list)  # each row's description in the reader's language
    query = f"&type={transaction_type}" if transaction_type else ""
    return render(request, "currency/transactions.html", {"form": form, "page": page, "query": query})
