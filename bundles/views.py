"""Customer bundle pages: the list, a confirmation step, and the purchase (tokens shown once)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from bundles import selectors, services
from idempotency.services import InvalidPageNonce, page_action_once, page_nonce_issue, page_nonce_key
from tokens.views import already_made, invalid_nonce_message
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
    every token of the bundle in this response only. The confirmation's address carries a
    one-time nonce (a GET without one redirects to a fresh one), so a reload or the back button
    shows the same form again and its repeated POST replays "already made" instead of buying."""
    user = request.user
    user.refresh_from_db(fields=["balance"])
    try:
        bundle = selectors.bundle_get(bundle_id=bundle_id)
    except NotFound:
        raise Http404 from None
    action = f"bundles.buy.{bundle.pk}"
    context = {"bundle": bundle, "balance_after": user.balance - bundle.total_price}
    if request.method == "GET":
        nonce = request.GET.get("nonce")
        try:
            page_nonce_key(user=user, action=action, nonce=nonce)
        except InvalidPageNonce:
            fresh = page_nonce_issue(user=user, action=action)
            return redirect(f"{reverse('bundles:buy', args=[bundle.pk])}?{urlencode({'nonce': fresh})}")
        return render(request, "bundles/confirm.html", {**context, "nonce": nonce})

    def buy():
        purchase = services.bundle_purchase(user=user, bundle_id=bundle.pk, request=request)
        reference = {
            "tokens": [item.token.pk for item in purchase.issued],
            "total": str(purchase.total_price),
        }
        return purchase, reference

    try:
        outcome = page_action_once(user=user, action=action, nonce=request.POST.get("nonce"), perform=buy)
    except InvalidPageNonce:
        context.update(error=invalid_nonce_message(), nonce=page_nonce_issue(user=user, action=action))
        return render(request, "bundles/confirm.html", context, status=400)
    except ApplicationError as exc:
        context.update(error=page_error_message(exc), nonce=request.POST.get("nonce"))
        return render(request, "bundles/confirm.html", context, status=exc.status_code)
    if outcome.replayed:
        return already_made(request, outcome=outcome, kind="bundle", bundle=bundle)
    purchase = outcome.result
    user.refresh_from_db(fields=["balance"])
    return render(
        request,
        "tokens/purchased.html",
        {"issued": purchase.issued, "total": purchase.total_price, "bundle": bundle},
    )
