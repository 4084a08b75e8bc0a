from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from audit.services import audit_record
from zenzefi.errors import ApplicationError, InvalidInput


class InvalidCredentials(ApplicationError):
    status_code = 401
    code = "invalid_credentials"
    default_detail = "Invalid username/email or password."


def referrer_by_code(code: str | None) -> User | None:
    """The user owning a referral code; an unknown code is a 400."""
    if not code:
        return None
    referrer = User.objects.filter(referral_code=code.strip().upper(), is_active=True).first()
    if referrer is None:
        raise InvalidInput("referral_code: unknown referral code.", code="invalid_referral_code")
    return referrer


@transaction.atomic
def user_register(
    *,
    email: str,
    username: str,
    password: str,
    full_name: str = "",
    referral_code: str | None = None,
    language: str | None = None,
    request=None,
) -> User:
    referrer = referrer_by_code(referral_code)
    user = User(email=email, username=username, full_name=full_name, referred_by=referrer)
    if language:
        user.language = language
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise InvalidInput(
            "A user with this email or username already exists.", code="duplicate_user"
        ) from None
    audit_record(
        action="user.register",
        actor=user,
        resource_type="user",
        resource_id=user.pk,
        details={"username": user.username, "referred_by": referrer.pk if referrer else None},
        request=request,
    )
    return user


def user_authenticate(*, identifier: str, password: str, request=None) -> User:
    """Username or email + password → the user, or InvalidCredentials (401). Both outcomes audited."""
    username = identifier
    if "@" in identifier:
        match = User.objects.filter(email__iexact=identifier).values_list("username", flat=True).first()
        username = match or identifier
    user = authenticate(request, username=username, password=password)
    if user is None:
        known = User.objects.filter(username__iexact=username).first()
        audit_record(
            action="auth.login_failed",
            actor=known,
            resource_type="user",
            resource_id=known.pk if known else "",
            details={"identifier": identifier[:150]},
            request=request,
        )
        raise InvalidCredentials()
    update_last_login(None, user)
    audit_record(action="auth.login", actor=user, resource_type="user", resource_id=user.pk, request=request)
    return user


def jwt_pair_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh), "token_type": "bearer"}
