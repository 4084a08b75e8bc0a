"""Reads of the referral program: the stats of GET /api/v1/users/me/referrals and the page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef

from accounts.models import User
from referrals.models import ReferralBonus


def referral_link(user: User) -> str:
    return f"{settings.BACKEND_URL.rstrip('/')}/accounts/signup/?ref={user.referral_code}"


def referral_stats(*, user: User, limit: int | None = None, skip: int = 0) -> dict[str, Any]:
    """SPEC §6's stats; `referred_users` is one page of them (newest first, `skip`/`limit`, an
    index range on (referred_by, date_joined, id)); `total_referrals` counts them all."""
    referred = (
        User.objects.filter(referred_by=user)
        .annotate(qualified=Exists(ReferralBonus.objects.filter(referred=OuterRef("pk"))))
        .order_by("-date_joined", "-id")
        .values("username", "date_joined", "qualified")
    )
    total = User.objects.filter(referred_by=user).count()
    qualifying = ReferralBonus.objects.filter(referrer=user).count()
    earned = User.objects.filter(pk=user.pk).values_list("referral_bonus_earned", flat=True).get()
    rows = referred[skip : skip + limit] if limit else referred[skip:]
    return {
        "referral_code": user.referral_code,
        "referral_link": referral_link(user),
        "total_referrals": total,
        "qualifying_referrals": qualifying,
        "total_bonus_earned": f"{earned:.2f}",
        "referred_users": [
            {"username": r["username"], "joined_at": r["date_joined"], "qualified": r["qualified"]}
            for r in rows
        ],
    }
