from __future__ import annotations

from django.db.models import QuerySet

from bundles.models import TokenBundle
from zenzefi.errors import NotFound


def bundle_list(*, include_inactive: bool = False) -> QuerySet[TokenBundle]:
    qs = TokenBundle.objects.all()
    if not include_inactive:
        qs = qs.filter(is_active=True)
    return qs.order_by("id")


def bundle_get(*, bundle_id: int, include_inactive: bool = False) -> TokenBundle:
    """One bundle; an unknown one (or an inactive one, unless asked for) is a 404."""
    bundle = bundle_list(include_inactive=include_inactive).filter(pk=bundle_id).first()
    if bundle is None:
        raise NotFound("Bundle not found.", code="bundle_not_found")
    return bundle
