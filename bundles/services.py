"""Bundle writes: purchase (all tokens and one ledger charge, atomically) and staff management."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.models import User
from audit.services import audit_record, request_origin
from bundles.models import TokenBundle
from bundles.pricing import token_costs, validate_bundle_values
from bundles.selectors import bundle_get
from currency.models import Transaction, TransactionType
from currency.services import balance_change
from tokens.events import token_event_emit
from tokens.metrics import token_purchases_total
from tokens.models import Scope
from tokens.services import IssuedToken, token_issue
from zenzefi.errors import InvalidInput, NotFound

# What staff may change; prices are derived and can never be set.
UPDATABLE_FIELDS = frozenset(
    {
        "name",
        "name_ru",
        "description",
        "description_ru",
        "token_count",
        "duration_hours",
        "scope",
        "discount_percent",
        "is_active",
    }
)


@dataclass(frozen=True)
class BundlePurchase:
    bundle: TokenBundle
    purchase_id: str
    issued: list[IssuedToken]  # plaintexts shown once to the buyer; never stored or logged
    total_price: Decimal
    transaction: Transaction


def _locked_bundle(bundle_id: int) -> TokenBundle:
    bundle = TokenBundle.objects.select_for_update().filter(pk=bundle_id).first()
    if bundle is None:
        raise NotFound("Bundle not found.", code="bundle_not_found")
    return bundle


def _validate(bundle: TokenBundle) -> None:
    if not (bundle.name or "").strip():
        raise InvalidInput("name: must not be blank.", code="invalid_name")
    validate_bundle_values(
        token_count=bundle.token_count,
        duration_hours=bundle.duration_hours,
        scope=bundle.scope,
        discount_percent=bundle.discount_percent,
    )


def _snapshot(bundle: TokenBundle) -> dict[str, Any]:
    return {
        "name": bundle.name,
        "token_count": bundle.token_count,
        "duration_hours": bundle.duration_hours,
        "scope": bundle.scope,
        "discount_percent": str(bundle.discount_percent),
        "is_active": bundle.is_active,
        "total_price": str(bundle.total_price),
    }


@transaction.atomic
def bundle_purchase(*, user: User, bundle_id: int, request=None) -> BundlePurchase:
    """Buy an active bundle: one PURCHASE for its total and `token_count` tokens, whose costs
    (shares of the total) sum to exactly the total. Insufficient balance is a 402 and leaves
    nothing behind; an unknown or inactive bundle is a 404."""
    # No row lock: purchases of one bundle must not queue behind each other. A concurrent
    # deactivation lands before or after this purchase, either way consistently.
    bundle = bundle_get(bundle_id=bundle_id)
    total = bundle.total_price
    purchase_id = uuid.uuid4().hex
    # Charge first: a 402 then costs no token rows (the whole transaction rolls back anyway).
    row = balance_change(
        user=user,
        amount=-total,
        transaction_type=TransactionType.PURCHASE,
        description=f"Bundle {bundle.name}: {bundle.token_count} × {bundle.duration_hours} h "
        f"({bundle.scope})",
        reference=f"bundle:{bundle.pk}:{purchase_id}",
        request=request,
        audit_details={"bundle_id": bundle.pk, "bundle_purchase": purchase_id},
    )
    issued = [
        token_issue(
            user=user,
            duration_hours=bundle.duration_hours,
            scope=bundle.scope,
            cost=cost,
            bundle_purchase=purchase_id,
        )
        for cost in token_costs(total_price=total, token_count=bundle.token_count)
    ]
    audit_record(
        action="bundle.purchase",
        actor=user,
        resource_type="bundle",
        resource_id=bundle.pk,
        details={
            "bundle_purchase": purchase_id,
            "name": bundle.name,
            "token_count": bundle.token_count,
            "duration_hours": bundle.duration_hours,
            "scope": bundle.scope,
            "discount_percent": str(bundle.discount_percent),
            "total_price": str(total),
            "transaction_id": row.pk,
            "token_ids": [i.token.pk for i in issued],
            "prefixes": [i.token.prefix for i in issued],
        },
        **request_origin(request),
    )
    duration_label, count = str(bundle.duration_hours), bundle.token_count

    def count_sale():
        token_purchases_total.labels(duration_hours=duration_label).inc(count)

    transaction.on_commit(count_sale)
    for item in issued:  # outbox rows in this transaction; only the enqueue waits for commit
        token_event_emit(token_id=item.token.pk, user_id=user.pk, event="token.purchased")
    return BundlePurchase(
        bundle=bundle, purchase_id=purchase_id, issued=issued, total_price=total, transaction=row
    )


@transaction.atomic
def bundle_create(
    *,
    actor: User,
    name: str,
    token_count: int,
    duration_hours: int,
    scope: str = Scope.FULL,
    discount_percent: Decimal = Decimal("0.00"),
    description: str = "",
    name_ru: str = "",
    description_ru: str = "",
    is_active: bool = True,
    request=None,
) -> TokenBundle:
    bundle = TokenBundle(
        name=name.strip(),
        name_ru=name_ru.strip(),
        description=description,
        description_ru=description_ru,
        token_count=token_count,
        duration_hours=duration_hours,
        scope=scope,
        discount_percent=discount_percent,
        is_active=is_active,
    )
    _validate(bundle)
    bundle.save()
    audit_record(
        action="bundle.create",
        actor=actor,
        resource_type="bundle",
        resource_id=bundle.pk,
        details=_snapshot(bundle),
        **request_origin(request),
    )
    return bundle


@transaction.atomic
def bundle_update(*, bundle_id: int, actor: User, data: dict[str, Any], request=None) -> TokenBundle:
    """Change some of a bundle's fields (staff); inactive bundles too (`is_active` reactivates)."""
    unknown = set(data) - UPDATABLE_FIELDS
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.", code="invalid_field")
    if isinstance(data.get("name"), str):
        data = {**data, "name": data["name"].strip()}
    bundle = _locked_bundle(bundle_id)
    before = _snapshot(bundle)
    changed = [field for field, value in data.items() if getattr(bundle, field) != value]
    for field in changed:
        setattr(bundle, field, data[field])
    _validate(bundle)
    if changed:
        bundle.save(update_fields=changed)
        after = _snapshot(bundle)
        audit_record(
            action="bundle.update",
            actor=actor,
            resource_type="bundle",
            resource_id=bundle.pk,
            details={
                "changed": sorted(changed),
                "before": {k: v for k, v in before.items() if before[k] != after[k]},
                "after": {k: v for k, v in after.items() if before[k] != after[k]},
            },
            **request_origin(request),
        )
    return bundle


@transaction.atomic
def bundle_deactivate(*, bundle_id: int, actor: User, request=None) -> TokenBundle:
    """Soft delete: the bundle disappears from the public list and cannot be bought; tokens
    already sold are untouched. Deactivating an inactive bundle changes (and records) nothing."""
    bundle = _locked_bundle(bundle_id)
    if bundle.is_active:
        TokenBundle.objects.filter(pk=bundle.pk).update(is_active=False)
        bundle.is_active = False
        audit_record(
            action="bundle.deactivate",
            actor=actor,
            resource_type="bundle",
            resource_id=bundle.pk,
            details={"name": bundle.name},
            **request_origin(request),
        )
    return bundle
