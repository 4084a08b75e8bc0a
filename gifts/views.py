"""Gift pages: /account/gifts/ — redeem a code (the token is shown once), buy one (the code is
shown once), and the list of gifts bought and redeemed."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from gifts import selectors, services
from idempotency.services import InvalidPageNonce, page_action_once, page_nonce_issue
from tokens.page_forms import TokenBuyForm
from tokens.services import token_price
from tokens.views import already_made, form_nonce, invalid_nonce_message
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message


class GiftRedeemForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Gift code"),
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "XXXX-XXXX-XXXX-XXXX"}),
    )


BUY_ACTION = "gifts.buy"


def _page(request, *, redeem_form=None, buy_form=None, status=200, nonce=None) -> HttpResponse:
    context = {
        "redeem_form": redeem_form or GiftRedeemForm(),
        "buy_form": buy_form or TokenBuyForm(prefix="gift"),
        "nonce": nonce or form_nonce(request, BUY_ACTION),
        "gifts": list(selectors.gift_list(user=request.user)[:50]),
        "now": timezone.now(),
    }
    return render(request, "gifts/gifts.html", context, status=status)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def gifts(request: HttpRequest) -> HttpResponse:
    user = request.user
    user.refresh_from_db(fields=["balance"])
    if request.method == "GET":
        return _page(request)
    if request.POST.get("action") == "buy":
        return _buy(request)
    form = GiftRedeemForm(request.POST)
    if not form.is_valid():
        return _page(request, redeem_form=form, status=400)
    try:
        redeemed = services.gift_redeem(user=user, code=form.cleaned_data["code"], request=request)
    except ApplicationError as exc:
        message = (
            _("This gift code is unknown, expired or already redeemed.")
            if exc.code == "gift_code_invalid"
            else page_error_message(exc)
        )
        form.add_error("code", message)
        return _page(request, redeem_form=form, status=exc.status_code)
    # The token's plaintext lives only in this response, as after a purchase.
    return render(request, "gifts/redeemed.html", {"issued": redeemed.issued, "gift": redeemed.gift})


def _buy(request: HttpRequest) -> HttpResponse:
    """`step=review`: the confirmation (price, balance after; nothing changes), carrying the
    gift page's one-time nonce; `step=confirm`: buy once per nonce and show the code once."""
    user = request.user
    form = TokenBuyForm(request.POST, prefix="gift")
    if not form.is_valid():
        return _page(request, buy_form=form, status=400)
    duration_hours, scope = form.cleaned_data["duration_hours"], form.cleaned_data["scope"]
    price = token_price(duration_hours)
    if request.POST.get("step") != "confirm":
        context = {
            "form": form,
            "price": price,
            "balance_after": user.balance - price,
            "nonce": form_nonce(request, BUY_ACTION),
        }
        return render(request, "gifts/buy_confirm.html", context)

    def buy():
        bought = services.gift_purchase(
            buyer=user, duration_hours=duration_hours, scope=scope, request=request
        )
        return bought, {"gift": bought.gift.pk, "total": str(bought.gift.price)}

    try:
        outcome = page_action_once(user=user, action=BUY_ACTION, nonce=request.POST.get("nonce"), perform=buy)
    except InvalidPageNonce:
        form.add_error(None, invalid_nonce_message())
        return _page(request, buy_form=form, status=400, nonce=page_nonce_issue(user=user, action=BUY_ACTION))
    except ApplicationError as exc:
        form.add_error(None, page_error_message(exc))
        return _page(request, buy_form=form, status=exc.status_code)
    if outcome.replayed:
        return already_made(request, outcome=outcome, kind="gift")
    user.refresh_from_db(fields=["balance"])
    bought = outcome.result
    return render(request, "gifts/bought.html", {"gift": bought.gift, "code": bought.code})
