"""Auto-renewal pages: the per-token switch (a button on the token list) and the preference."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from renewals.services import auto_renew_min_balance_set, token_auto_renew_set
from zenzefi.amounts import AmountFormField
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message


class AutoRenewPreferenceForm(forms.Form):
    auto_renew_min_balance = AmountFormField(
        label=gettext_lazy("Keep at least (ZNC)"), min_value=0, max_digits=12, decimal_places=2
    )


@login_required
@require_POST
def toggle(request: HttpRequest, token_id: int) -> HttpResponse:
    enable = request.POST.get("auto_renew") == "on"
    try:
        token = token_auto_renew_set(user=request.user, token_id=token_id, auto_renew=enable, request=request)
    except ApplicationError as exc:
        messages.error(request, page_error_message(exc))
    else:
        if token.auto_renew:
            messages.success(
                request, _("Auto-renewal is on for token %(prefix)s…") % {"prefix": token.prefix}
            )
        else:
            messages.info(request, _("Auto-renewal is off for token %(prefix)s…") % {"prefix": token.prefix})
    return redirect("tokens:list")


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    user = request.user
    user.refresh_from_db(fields=["auto_renew_min_balance", "balance"])
    form = AutoRenewPreferenceForm(
        request.POST or None, initial={"auto_renew_min_balance": user.auto_renew_min_balance}
    )
    if request.method == "POST" and form.is_valid():
        try:
            auto_renew_min_balance_set(
                user=user, amount=form.cleaned_data["auto_renew_min_balance"], request=request
            )
        except ApplicationError as exc:
            form.add_error("auto_renew_min_balance", page_error_message(exc))
        else:
            messages.success(request, _("Your auto-renewal preference has been saved."))
            return redirect("renewals:preferences")
    return render(request, "renewals/preferences.html", {"form": form})
