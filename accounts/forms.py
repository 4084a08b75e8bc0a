from django import forms
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    PasswordChangeForm,
    SetPasswordForm,
    UserChangeForm,
    UserCreationForm,
)
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from currency.services import ADJUSTMENT_LIMIT, ADJUSTMENT_REASON_MAX_LENGTH
from zenzefi.amounts import AmountFormField


class AdminUserCreationForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class AdminUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class BalanceAdjustmentForm(forms.Form):
    """Staff balance adjustment: a signed amount and a mandatory reason. Parsed here; the rules
    (not zero, the limit, the reason) are `currency.services.balance_adjust`'s."""

    amount = AmountFormField(
        max_digits=12,
        decimal_places=2,
        min_value=-ADJUSTMENT_LIMIT,
        max_value=ADJUSTMENT_LIMIT,
        label=_("Amount, ZNC"),
        help_text=_("Positive credits the user, negative debits. Two decimals at most."),
    )
    reason = forms.CharField(
        label=_("Reason"), max_length=ADJUSTMENT_REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 3})
    )


# Password forms: Django's validation, then accounts.services.user_password_set, which also
# revokes every API session of the user (issue 11 item 5). `request`/`actor` are set by the view.


class ServicePasswordChangeForm(PasswordChangeForm):
    """The customer's own password change (`/account/password/`)."""

    request = None

    def save(self, commit=True):
        from accounts.services import user_password_set

        return user_password_set(
            user=self.user, password=self.cleaned_data["new_password1"], source="change", request=self.request
        )


class ServiceSetPasswordForm(SetPasswordForm):
    """The new password after a reset by email."""

    request = None

    def save(self, commit=True):
        from accounts.services import user_password_set

        return user_password_set(
            user=self.user, password=self.cleaned_data["new_password1"], source="reset", request=self.request
        )


class ServiceAdminPasswordChangeForm(AdminPasswordChangeForm):
    """Staff setting (or disabling) a user's password in the admin."""

    def save(self, commit=True):
        from accounts.services import user_password_set

        usable = self.cleaned_data.get("set_usable_password", True)
        password = self.cleaned_data["password1"] if usable else None
        return user_password_set(user=self.user, password=password, source="admin")
