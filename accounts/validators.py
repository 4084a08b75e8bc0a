"""Sign-up rules: one copy for `POST auth/register` (accounts.serializers.RegisterSerializer) and
the sign-up page (accounts.page_forms.SignupForm).

Each edge parses its input with its own field classes, declared with the limits and validators
below; `signup_validate` then applies the rules that need the database or several fields: email
and username not taken (case-insensitive), and Django's password validators (AUTH_PASSWORD_VALIDATORS)
against the would-be user. The referral code is checked by `accounts.services.referrer_by_code`,
which `user_register` calls for both. The database's unique constraints stay the last word
(`user_register` turns a race into `duplicate_user`).
"""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import User

EMAIL_MAX_LENGTH = 254
USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 150
FULL_NAME_MAX_LENGTH = 255
PASSWORD_MAX_LENGTH = 128
REFERRAL_CODE_MAX_LENGTH = 32
# Letters, digits and @/./+/-/_ (the User model's own rule).
USERNAME_VALIDATORS = (UnicodeUsernameValidator(),)


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def signup_validate(
    *, email: str | None, username: str | None, password: str | None, full_name: str | None = ""
) -> dict[str, str]:
    """Check a sign-up whose fields the edge has parsed: returns the normalized `email` and
    `username`, or raises `ValidationError({field: [messages]})` with every rule broken
    (fields `email`, `username`, `password`). A field given as None was already refused by
    the edge's parsing and is not checked again."""
    errors: dict[str, list] = {}
    cleaned: dict[str, str] = {}
    if email is not None:
        cleaned["email"] = normalize_email(email)
        if User.objects.filter(email__iexact=cleaned["email"]).exists():
            errors["email"] = [ValidationError(_("A user with this email already exists."), code="duplicate")]
    if username is not None:
        cleaned["username"] = username
        if User.objects.filter(username__iexact=username).exists():
            errors["username"] = [
                ValidationError(_("A user with this username already exists."), code="duplicate")
            ]
    if password is not None:
        candidate = User(
            username=cleaned.get("username", ""), email=cleaned.get("email", ""), full_name=full_name or ""
        )
        try:
            password_validation.validate_password(password, user=candidate)
        except ValidationError as exc:
            errors["password"] = exc.error_list
    if errors:
        raise ValidationError(errors)
    return cleaned
