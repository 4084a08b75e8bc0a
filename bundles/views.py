"""Customer bundle pages: the list, a confirmation step, and the purchase (tokens shown once)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from bundles import selectors, services
from zenzefi.errors import ApplicationError, NotFound
from zenzefi.page_errors import page_error_message


@login_required
def bundle_list(request: HttpRequest) -> HttpResponse:
    return render(request, "bundles/list.html", {"bundles": selectors.bundle_list()})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def bundle_buy(request: HttpRequest, bundle_id: int) -> HttpResponse:
    """GET: the confirmation page (total, balance after; nothing changes). POST: buy, and show
    every token of the bundle in this response only."""
    user = request.user
    user.refresh_from_db(fields=["balance"])
    try:
        bundle = selectors.bundle_get(bundle_id=bundle_id)
    except NotFound:
        raise Http404 from None
    context = {"bundle": bundle, "balance_after": user.balance - bundle.total_price}
    if request.method == "POST":
        try:
            purchase = services.bundle_purchase(user=user, bundle_id=bundle.pk, request=request)
        except ApplicationError as exc:
            context["error"] = page_error_message(exc)
            return render(request, "bundles/confirm.html", context, status=exc.status_code)
        user.refresh_from_db(fields=["balance"])
        return render(
            request,
            "tokens/purchased.html",
            {"issued": purchase.issued, "total": purchase.total_price, "bundle": bundle},
        )
    return render(request, "bundles/confirm.html", context)
