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
from tokens import selectors, services
from tokens.models import AccessToken
from tokens.page_forms import TokenBuyForm
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message

PAGE_SIZE = 20


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def token_buy(request: HttpRequest) -> HttpResponse:
    """GET: choose duration and scope. POST `step=review`: the confirmation page (price, balance
    after; nothing changes). POST `step=confirm`: buy, and show the token in this response only."""
    user = request.user
    user.refresh_from_db(fields=["balance"])
    if request.method == "GET":
        return render(request, "tokens/buy.html", {"form": TokenBuyForm()})
    form = TokenBuyForm(request.POST)
    if not form.is_valid():
        return render(request, "tokens/buy.html", {"form": form})
    duration_hours, scope = form.cleaned_data["duration_hours"], form.cleaned_data["scope"]
    price = services.token_price(duration_hours)
    if request.POST.get("step") == "confirm":
        try:
            issued = services.token_purchase(
                user=user, duration_hours=duration_hours, scope=scope, request=request
            )
        except ApplicationError as exc:
            form.add_error(None, page_error_message(exc))
            return render(request, "tokens/buy.html", {"form": form}, status=exc.status_code)
        user.refresh_from_db(fields=["balance"])
        # The plaintext lives only in this response (never in a URL, session, message or log).
        return render(request, "tokens/purchased.html", {"issued": [issued], "total": price})
    context = {"form": form, "price": price, "balance_after": user.balance - price}
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
