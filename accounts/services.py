from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import Language, User
from audit.services import audit_record, request_origin
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
        **request_origin(request),
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
            **request_origin(request),
        )
        raise InvalidCredentials()
    update_last_login(None, user)
    audit_record(
        action="auth.login", actor=user, resource_type="user", resource_id=user.pk, **request_origin(request)
    )
    return user


# What a customer may change about themselves (page and `PATCH /api/v1/users/me`).
NOTIFICATION_PREFERENCE_FIELDS = (
    "notify_token_expiring",
    "notify_low_balance",
    "notify_renewal",
    "notify_payment",
)
SELF_EDITABLE_FIELDS = ("full_name", "language", *NOTIFICATION_PREFERENCE_FIELDS)


@transaction.atomic
def user_self_update(*, user: User, request=None, **values) -> User:
    """A customer's change to their own profile and notification preferences.

    Only SELF_EDITABLE_FIELDS; anything else is a 400 and nothing changes. Values equal to the
    stored ones are not written; what did change is saved in one UPDATE and audited
    (`user.profile_update`) with its old and new values.
    """
    unknown = sorted(set(values) - set(SELF_EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: cannot be changed here (allowed: {', '.join(SELF_EDITABLE_FIELDS)}).",
            code="unknown_field",
        )
    if "language" in values and values["language"] not in Language.values:
        raise InvalidInput(f"language: must be one of {', '.join(Language.values)}.", code="invalid_language")
    if "full_name" in values:
        values["full_name"] = (values["full_name"] or "").strip()
        if len(values["full_name"]) > User._meta.get_field("full_name").max_length:
            raise InvalidInput("full_name: too long.", code="invalid_full_name")
    for field in NOTIFICATION_PREFERENCE_FIELDS:
        if field in values and not isinstance(values[field], bool):
            raise InvalidInput(f"{field}: must be true or false.", code="invalid_preference")

    locked = User.objects.select_for_update(of=("self",)).get(pk=user.pk)
    changes = {
        field: {"from": getattr(locked, field), "to": value}
        for field, value in values.items()
        if getattr(locked, field) != value
    }
    if changes:
        for field, change in changes.items():
            setattr(locked, field, change["to"])
            setattr(user, field, change["to"])
        locked.save(update_fields=sorted(changes))
        audit_record(
            action="user.profile_update",
            actor=user,
            resource_type="user",
            resource_id=user.pk,
            details={"fields": sorted(changes), "changes": changes},
            **request_origin(request),
        )
    return user


def _masked_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


def user_password_reset_request(*, email: str, request=None) -> None:
    """Audit a password-reset request. The same entry is written whether or not an account has
    this address (the page answers the same either way); the address is stored masked, and the
    matching account, if any, is named for staff only through `resource_id`."""
    email = (email or "").strip()
    match = User.objects.filter(email__iexact=email, is_active=True).values_list("pk", flat=True).first()
    audit_record(
        action="auth.password_reset_request",
        resource_type="user",
        resource_id=match or "",
        details={"email": _masked_email(email)},
        **request_origin(request),
    )


def user_sessions_revoke(*, user: User, reason: str, actor: User | None = None, request=None) -> int:
    """End every API session of `user`: blacklist all their outstanding refresh JWTs (so none
    can be refreshed again). Access JWTs die with them by their own checks: the password-hash
    claim (CHECK_REVOKE_TOKEN) after a password change, `is_active` after a deactivation.
    Page sessions end by Django's session hash (password) and ModelBackend (inactive users).
    Audited as `auth.sessions_revoked`; returns how many refresh JWTs were blacklisted."""
    pending = OutstandingToken.objects.filter(
        user_id=user.pk, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    ).values_list("pk", flat=True)
    rows = [BlacklistedToken(token_id=pk) for pk in pending]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    audit_record(
        action="auth.sessions_revoked",
        actor=actor or user,
        resource_type="user",
        resource_id=user.pk,
        details={"reason": reason, "refresh_tokens": len(rows)},
        **request_origin(request),
    )
    return len(rows)


@transaction.atomic
def user_password_set(
    *, user: User, password: str | None, source: str, actor: User | None = None, request=None
) -> User:
    """Set (or, with None, disable) a user's password: every path that changes one (password
    change and reset pages, the admin's password form) comes here, so none of them leaves an
    old API session alive. The caller has validated the password."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(
        action="user.password_change",
        actor=actor or user,
        resource_type="user",
        resource_id=user.pk,
        details={"source": source},
        **request_origin(request),
    )
    user_sessions_revoke(user=user, reason=f"password_{source}", actor=actor, request=request)
    return user


def jwt_pair_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh), "token_type": "bearer"}


def jwt_flush_expired(*, chunk: int = 5000) -> int:
    """Delete the records of refresh JWTs that have expired anyway (simplejwt's
    `flushexpiredtokens`, in chunks so a large backlog never holds one long transaction).
    Their blacklist rows go with them. Returns how many were deleted."""
    deleted = 0
    while True:
        ids = list(
            OutstandingToken.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True)[
                :chunk
            ]
        )
        if not ids:
            return deleted
        with transaction.atomic():
            BlacklistedToken.objects.filter(token_id__in=ids).delete()
            OutstandingToken.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
