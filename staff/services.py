"""Staff changes to a user (the Django admin's change form and "Adjust balance" page, and
`PATCH admin/users/{id}`): one service for both, above accounts, currency and tokens (it adjusts
the balance through the ledger and drops the token-validation cache of a deactivated user)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from accounts.models import MONEY_FIELDS, Tier, User
from accounts.services import user_sessions_revoke
from audit.services import audit_record, request_origin
from currency.services import balance_adjust
from tokens.validation import forget_user
from zenzefi.errors import Forbidden, InvalidInput, NotFound


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
            **request_origin(request),
        )
    if "is_active" in changes:
        if not user.is_active:
            user_sessions_revoke(user=user, reason="deactivated", actor=actor, request=request)
        user_pk = user.pk
        transaction.on_commit(lambda: forget_user(user_pk))
    return user
