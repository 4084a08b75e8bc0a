from __future__ import annotations

from django.db.models import QuerySet

from tokens.models import AccessToken


def token_list(*, user=None, active_only: bool = False) -> QuerySet[AccessToken]:
    qs = AccessToken.objects.all()
    if user is not None:
        qs = qs.filter(user=user)
    if active_only:
        qs = qs.active()
    return qs.order_by("-created_at", "-id")
