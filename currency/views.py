"""Customer ledger pages: the transaction history. (Top-up pages live in the `payments` app.)"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from currency import selectors
from currency.descriptions import describe
from currency.page_forms import TransactionFilterForm
from zenzefi.pagination import DeferredJoinPaginator

PAGE_SIZE = 20


@login_required
def transactions(request: HttpRequest) -> HttpResponse:
    form = TransactionFilterForm(request.GET or None)
    transaction_type = form.cleaned_data["type"] or None if form.is_valid() else None
    qs = selectors.transaction_list(user=request.user, transaction_type=transaction_type)
    page = DeferredJoinPaginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    describe(page.object_list)  # each row's description in the reader's language
    query = f"&type={transaction_type}" if transaction_type else ""
    return render(request, "currency/transactions.html", {"form": form, "page": page, "query": query})
