"""Customer money pages: top up (through the provider seam in currency.payments) and history."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.templatetags.pages import money
from currency import payments, selectors
from currency.descriptions import describe
from currency.page_forms import TopUpForm, TransactionFilterForm
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message

PAGE_SIZE = 20


def _amount_error(exc: ApplicationError) -> str:
    if exc.code == "invalid_amount":
        return _("Enter an amount between %(min)s and %(max)s ZNC with at most two decimals.") % {
            "min": money(settings.TOPUP_MIN_AMOUNT),
            "max": money(settings.TOPUP_MAX_AMOUNT),
        }
    return page_error_message(exc)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def topup(request: HttpRequest) -> HttpResponse:
    """GET: the amount form. POST: the provider's checkout step (the mock checkout page)."""
    if not payments.topups_available():
        return render(request, "currency/topup_unavailable.html")
    form = TopUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            step = payments.checkout_start(
                request=request,
                amount=form.cleaned_data["amount"],
                currency=form.cleaned_data.get("currency") or None,
            )
        except ApplicationError as exc:
            form.add_error("amount", _amount_error(exc))
        else:
            if step.redirect_url:
                return redirect(step.redirect_url)
            return render(request, step.template, step.context)
    return render(request, "currency/topup.html", {"form": form})


@login_required
@require_POST
def mock_checkout(request: HttpRequest) -> HttpResponse:
    """The mock provider's "pay" / "cancel" buttons."""
    checkout_id = request.POST.get("checkout_id", "")
    pay = request.POST.get("action") == "pay"
    try:
        row = payments.mock_checkout_finish(request=request, checkout_id=checkout_id, pay=pay)
    except payments.CheckoutNotFound:
        messages.error(request, _("This checkout is finished or unknown. Nothing was charged."))
        return redirect("currency:topup")
    except ApplicationError as exc:
        messages.error(request, page_error_message(exc))
        return redirect("currency:topup")
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
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    describe(page.object_list)  # each row's description in the reader's language
    query = f"&type={transaction_type}" if transaction_type else ""
    return render(request, "currency/transactions.html", {"form": form, "page": page, "query": query})
