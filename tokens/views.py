"""Customer token pages: buy (with a confirmation step; the token shown once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.templatetags.pages import money
from idempotency.services import InvalidPageNonce, page_action_once, page_nonce_issue, page_nonce_key
from tokens import selectors, services
from tokens.models import AccessToken
from tokens.page_forms import TokenBuyForm
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message

PAGE_SIZE = 20


BUY_ACTION = "tokens.buy"


def form_nonce(request: HttpRequest, action: str) -> str:
    """The nonce this request carries for `action` if it is valid, else a fresh one: a step that
    changes nothing (a choice, a review) passes it on, so every rendering of one purchase's
    confirm form (a reload, the back button) carries the same nonce."""
    nonce = request.POST.get("nonce") or request.GET.get("nonce")
    try:
        page_nonce_key(user=request.user, action=action, nonce=nonce)
    except InvalidPageNonce:
        return page_nonce_issue(user=request.user, action=action)
    return nonce


def invalid_nonce_message() -> str:
    return _(
        "This form has expired or was already replaced by a newer one. Nothing was charged: "
        "please check your choice and confirm again."
    )


def already_made(request: HttpRequest, *, outcome, kind: str, **context) -> HttpResponse:
    """The answer to a repeated money form (a reload, a resubmit, back-and-submit, a double
    click): the purchase was made once, at `outcome.done_at`; nothing was charged now. Tokens
    bought by it are listed without their plaintext (never stored); an unused one can still be
    revoked with a full refund."""
    reference = outcome.reference
    tokens = list(selectors.token_list(user=request.user).filter(pk__in=reference.get("tokens", [])))
    now = timezone.now()
    for token in tokens:
        token.refund_now = services.refund_for(token, now) if token.revoked_at is None else None
    context.update(
        {"kind": kind, "done_at": outcome.done_at, "tokens": tokens, "total": reference.get("total")}
    )
    return render(request, "purchase_already_made.html", context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def token_buy(request: HttpRequest) -> HttpResponse:
    """GET: choose duration and scope. POST `step=review`: the confirmation page (price, balance
    after; nothing changes). POST `step=confirm`: buy, and show the token in this response only.
    The choice page issues a one-time nonce that the review passes on to the confirm form; the
    confirm records it with the purchase, so repeating that POST never buys twice."""
    user = request.user
    user.refresh_from_db(fields=["balance"])
    if request.method == "GET":
        return render(
            request, "tokens/buy.html", {"form": TokenBuyForm(), "nonce": form_nonce(request, BUY_ACTION)}
        )
    form = TokenBuyForm(request.POST)
    if not form.is_valid():
        return render(
            request, "tokens/buy.html", {"form": form, "nonce": form_nonce(request, BUY_ACTION)}, status=400
        )
    duration_hours, scope = form.cleaned_data["duration_hours"], form.cleaned_data["scope"]
    price = services.token_price(duration_hours)
    if request.POST.get("step") == "confirm":

        def buy():
            issued = services.token_purchase(
                user=user, duration_hours=duration_hours, scope=scope, request=request
            )
            return issued, {"tokens": [issued.token.pk], "total": str(price)}

        try:
            outcome = page_action_once(
                user=user, action=BUY_ACTION, nonce=request.POST.get("nonce"), perform=buy
            )
        except InvalidPageNonce:
            form.add_error(None, invalid_nonce_message())
            context = {"form": form, "nonce": page_nonce_issue(user=user, action=BUY_ACTION)}
            return render(request, "tokens/buy.html", context, status=400)
        except ApplicationError as exc:
            form.add_error(None, page_error_message(exc))
            context = {"form": form, "nonce": form_nonce(request, BUY_ACTION)}
            return render(request, "tokens/buy.html", context, status=exc.status_code)
        if outcome.replayed:
            return already_made(request, outcome=outcome, kind="token")
        user.refresh_from_db(fields=["balance"])
        # The plaintext lives only in this response (never in a URL, session, message or log).
        return render(request, "tokens/purchased.html", {"issued": [outcome.result], "total": price})
    context = {
        "form": form,
        "price": price,
        "balance_after": user.balance - price,
        "nonce": form_nonce(request, BUY_ACTION),
    }
    return render(request, "tokens/buy_confirm.html", context)


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.token_list(user=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "tokens/list.html", {"page": page, "now": timezone.now()})


def _own_token(request: HttpRequest, token_id: int) -> AccessToken:
    token = selectors.token_list(user=request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404
    return token


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """GET: the confirmation with the refund as of now (tokens.services.refund_for). POST: revoke."""
    token = _own_token(request, token_id)
    if request.method == "POST":
        try:
            token = services.token_revoke(
                token_id=token.pk, owner=request.user, actor=request.user, request=request
            )
        except ApplicationError as exc:
            messages.error(request, page_error_message(exc))
        else:
            messages.success(
                request,
                _("Token %(prefix)s… revoked. Refunded: %(amount)s ZNC.")
                % {"prefix": token.prefix, "amount": money(token.refund_amount)},
            )
        return redirect("tokens:list")
    if token.revoked_at is not None:
        messages.info(request, _("This token is already revoked."))
        return redirect("tokens:list")
    now = timezone.now()
    context = {"token": token, "refund": services.refund_for(token, now), "now": now}
    return render(request, "tokens/revoke_confirm.html", context)
