"""Service errors (`ApplicationError`) as messages for the customer pages, in the page's language.

Services raise errors with English `detail` strings (the API's contract). Pages show the
translated message for the codes customers meet; any other error falls back to its `detail`.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from zenzefi.errors import ApplicationError, InsufficientFunds


def page_error_message(exc: ApplicationError) -> str:
    if isinstance(exc, InsufficientFunds) and exc.code == "insufficient_funds":
        balance, required = exc.extra.get("balance"), exc.extra.get("required")
        if balance is not None and required is not None:
            return _("Insufficient balance: %(balance)s ZNC available, %(required)s ZNC needed.") % {
                "balance": balance,
                "required": required,
            }
        return _("Insufficient balance.")
    messages = {
        "balance_conflict": _("Your balance changed at the same time. Please try again."),
        "invalid_duration": _("Choose one of the offered durations."),
        "invalid_scope": _("Choose one of the offered scopes."),
        "invalid_amount": _("Enter a valid amount."),
        "invalid_referral_code": _("Unknown referral code."),
        "duplicate_user": _("A user with this email or username already exists."),
        "cannot_deactivate_self": _("You cannot deactivate your own account."),
        "zero_amount": _("The amount cannot be zero."),
        "token_not_usable": _("This token is revoked or expired."),
        "invalid_credentials": _("Invalid username/email or password."),
        "token_not_found": _("Token not found."),
        "already_revoked": _("This token is already revoked."),
        "bundle_not_found": _("This bundle is not available."),
        "topups_unavailable": _("Top-ups are unavailable right now."),
        "rate_limited": _("Too many attempts from your address. Please try again later."),
    }
    return messages.get(exc.code, exc.detail)
