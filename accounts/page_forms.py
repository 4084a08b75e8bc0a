"""Forms of the customer pages (sign-up, log-in, profile). Business rules stay in services."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import validators
from accounts.models import Language, User
from accounts.services import referrer_by_code
from accounts.templatetags.pages import money
from zenzefi.errors import InvalidInput


class SignupForm(forms.Form):
    """Parses the form; the sign-up rules are accounts.validators' (the API's too)."""

    email = forms.EmailField(
        label=_("Email"),
        max_length=validators.EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    username = forms.CharField(
        label=_("Username"),
        min_length=validators.USERNAME_MIN_LENGTH,
        max_length=validators.USERNAME_MAX_LENGTH,
        validators=list(validators.USERNAME_VALIDATORS),
        help_text=_("Letters, digits and @/./+/-/_ only."),
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )
    full_name = forms.CharField(
        label=_("Full name"), max_length=validators.FULL_NAME_MAX_LENGTH, required=False
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        max_length=validators.PASSWORD_MAX_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters, not too common and not only digits."),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        max_length=validators.PASSWORD_MAX_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    referral_code = forms.CharField(
        label=_("Referral code"),
        max_length=validators.REFERRAL_CODE_MAX_LENGTH,
        required=False,
        help_text=_("Optional: the code of the customer who invited you."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.referrer: User | None = None

    def clean_referral_code(self) -> str:
        code = self.cleaned_data["referral_code"].strip().upper()
        try:
            self.referrer = referrer_by_code(code)
        except InvalidInput:
            raise ValidationError(_("Unknown referral code.")) from None
        return code

    def clean(self):
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", _("The two passwords do not match."))
            password1 = None  # no strength verdict on a password typed two ways
        try:
            cleaned.update(
                validators.signup_validate(
                    email=cleaned.get("email"),
                    username=cleaned.get("username"),
                    password=password1,
                    full_name=cleaned.get("full_name", ""),
                )
            )
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                self.add_error("password1" if field == "password" else field, errors)
        return cleaned


class LoginForm(forms.Form):
    identifier = forms.CharField(
        label=_("Username or email"),
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class ProfileForm(forms.ModelForm):
    language = forms.ChoiceField(label=_("Language"), choices=Language.choices)

    class Meta:
        model = User
        fields = ["full_name", "language"]
        labels = {"full_name": _("Full name")}


def _switch() -> forms.CheckboxInput:
    return forms.CheckboxInput(attrs={"role": "switch"})


class NotificationPreferencesForm(forms.Form):
    """Which notification emails the customer wants (an unticked box is "off")."""

    notify_token_expiring = forms.BooleanField(
        label=_("A token expires soon"), required=False, widget=_switch()
    )
    notify_low_balance = forms.BooleanField(label=_("My balance is low"), required=False, widget=_switch())
    notify_renewal = forms.BooleanField(
        label=_("A token was renewed automatically, or could not be"),
        required=False,
        widget=_switch(),
        help_text=_("After each auto-renewal, and when one fails (for example, for lack of balance)."),
    )
    notify_payment = forms.BooleanField(
        label=_("A payment has been received"),
        required=False,
        widget=_switch(),
        help_text=_("When a top-up is credited to your balance."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        hours = settings.TOKEN_EXPIRING_NOTIFY_HOURS
        self.fields["notify_token_expiring"].help_text = ngettext(
            "Once per token, when it has less than %(hours)s hour left.",
            "Once per token, when it has less than %(hours)s hours left.",
            hours,
        ) % {"hours": hours}
        every = settings.LOW_BALANCE_NOTIFY_EVERY_HOURS
        self.fields["notify_low_balance"].help_text = ngettext(
            "When your balance is below %(threshold)s ZNC, at most once every %(hours)s hour.",
            "When your balance is below %(threshold)s ZNC, at most once every %(hours)s hours.",
            every,
        ) % {"threshold": money(settings.LOW_BALANCE_THRESHOLD), "hours": every}
