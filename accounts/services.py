from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import MONEY_FIELDS, Language, Tier, User
from audit.services import audit_record
from currency.services import balance_adjust
from tokens.validation import forget_user
from zenzefi.errors import ApplicationError, Forbidden, InvalidInput, NotFound


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
            request=request,
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
        request=request,
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
        request=request,
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
        request=request,
    )
    user_sessions_revoke(user=user, reason=f"password_{source}", actor=actor, request=request)
    return user


def jwt_pair_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh), "token_type": "bearer"}


def user_admin_may_change(*, actor: User, target: User) -> bool:
    """Whether `actor` may change `target`'s account (admin change form and staff API alike)."""
    return actor.is_superuser or not target.is_superuser


def user_admin_update_check(
    *, actor: User, target: User, is_active: bool | None = None, tier: str | None = None
) -> None:
    """The rules of a staff change to a user's `is_active`/`tier`, raising the error
    `user_admin_update` raises: nobody deactivates their own account, a superuser's account is
    changed by superusers only, `tier` is one of Tier. The admin's change form calls it to show
    the error next to the field before anything is written."""
    if tier is not None and tier not in Tier.values:
        raise InvalidInput(f"tier: must be one of {', '.join(Tier.values)}.", code="invalid_tier")
    if is_active is False and target.pk == actor.pk:
        raise InvalidInput("You cannot deactivate your own account.", code="cannot_deactivate_self")
    if (is_active is not None or tier is not None) and not user_admin_may_change(actor=actor, target=target):
        # As in the admin (UserAdmin.has_change_permission): a superuser's account is changed by
        # superusers only.
        raise Forbidden("Only a superuser can change a superuser's account.", code="permission_denied")


# Columns a staff change writes through `user_admin_update` with rules of their own; the admin
# form's other columns (`fields`) are written as validated by that form.
ADMIN_RULED_FIELDS = frozenset({"is_active", "tier", "password", *MONEY_FIELDS})


def _audit_value(value):
    if isinstance(value, bool | int | str) or value is None:
        return value
    return getattr(value, "pk", None) or str(value)


@transaction.atomic
def user_admin_update(
    *,
    user_id: int,
    actor: User,
    is_active: bool | None = None,
    tier: str | None = None,
    adjustment_amount: Decimal | None = None,
    adjustment_reason: str | None = None,
    fields: dict | None = None,
    related: tuple[str, ...] = (),
    request=None,
) -> User:
    """Staff change to a user: `is_active`, `tier` and/or a balance ADJUSTMENT with a reason
    (`currency.services.balance_adjust`); from the admin's change form also the other columns
    it edits (`fields`: username, email, profile, preferences, staff flags) and, for the audit,
    the names of the many-to-many fields it saves itself (`related`: groups, permissions).
    Every staff write to a user (admin form, admin "Adjust balance", staff API) comes here.

    All or nothing: any error (400, or 402 for a debit beyond the balance) changes nothing.
    One `admin.user_update` audit entry lists what changed (the ledger writes its own
    `balance.change` entry). A change of `is_active` drops the user's token cache entries
    after commit, so deactivated users' tokens stop validating at once.
    """
    fields = dict(fields or {})
    if (
        is_active is None
        and tier is None
        and adjustment_amount is None
        and adjustment_reason is None
        and not fields
        and not related
    ):
        raise InvalidInput(
            "Nothing to change: give is_active, tier or balance_adjustment.", code="no_changes"
        )
    ruled = sorted(set(fields) & ADMIN_RULED_FIELDS)
    if ruled:
        raise InvalidInput(f"{ruled[0]}: has its own rule; not a plain field.", code="unknown_field")
    if tier is not None and tier not in Tier.values:
        raise InvalidInput(f"tier: must be one of {', '.join(Tier.values)}.", code="invalid_tier")
    if adjustment_amount is not None or adjustment_reason is not None:
        if adjustment_amount is None:
            raise InvalidInput("balance_adjustment.amount: required.", code="invalid_adjustment")
        if not (adjustment_reason or "").strip():
            raise InvalidInput("balance_adjustment.reason: a reason is required.", code="invalid_adjustment")

    user = User.objects.select_for_update(of=("self",)).filter(pk=user_id).first()
    if user is None:
        raise NotFound("User not found.", code="user_not_found")
    user_admin_update_check(actor=actor, target=user, is_active=is_active, tier=tier)
    if (fields or related) and not user_admin_may_change(actor=actor, target=user):
        raise Forbidden("Only a superuser can change a superuser's account.", code="permission_denied")

    changes: dict[str, dict] = {}
    if is_active is not None and is_active != user.is_active:
        changes["is_active"] = {"from": user.is_active, "to": is_active}
        user.is_active = is_active
    if tier is not None and tier != user.tier:
        changes["tier"] = {"from": user.tier, "to": tier}
        user.tier = tier
    for name, value in fields.items():
        if getattr(user, name) != value:
            changes[name] = {"from": _audit_value(getattr(user, name)), "to": _audit_value(value)}
            setattr(user, name, value)
    if changes:
        user.save(update_fields=list(changes))

    if adjustment_amount is not None:
        before = user.balance
        row = balance_adjust(
            user=user, amount=adjustment_amount, reason=adjustment_reason, actor=actor, request=request
        )
        changes["balance"] = {
            "from": f"{before:.2f}",
            "to": f"{row.balance_after:.2f}",
            "adjustment": f"{row.amount:.2f}",
            "reason": row.description,
            "transaction_id": row.pk,
        }

    audited = sorted({*changes, *related})
    if audited:
        audit_record(
            action="admin.user_update",
            actor=actor,
            resource_type="user",
            resource_id=user.pk,
            details={"fields": audited, "changes": changes, "by": actor.username},
            request=request,
        )
    if "is_active" in changes:
        if not user.is_active:
            user_sessions_revoke(user=user, reason="deactivated", actor=actor, request=request)
        user_pk = user.pk
        transaction.on_commit(lambda: forget_user(user_pk))
    return user


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
