from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import User
from gifts.models import GiftCode


def gift_list(*, user: User) -> QuerySet[GiftCode]:
    """Gifts the user bought or redeemed, newest first."""
    return (
        GiftCode.objects.filter(Q(buyer=user) | Q(redeemed_by=user))
        .select_related("buyer", "redeemed_by", "token")
        .order_by("-created_at", "-id")
    )
