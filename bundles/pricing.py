"""Bundle prices, derived from the token prices in settings and the discount; never stored."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tokens.services import token_price, validate_scope
from zenzefi.errors import InvalidInput
from zenzefi.money import to_money, to_money_down

MAX_TOKEN_COUNT = 100
MAX_DISCOUNT = Decimal("100")


@dataclass(frozen=True)
class BundlePrices:
    base_price: Decimal
    total_price: Decimal
    savings: Decimal
    price_per_token: Decimal


def bundle_prices(*, token_count: int, duration_hours: int, discount_percent: Decimal) -> BundlePrices:
    """base = count × price(duration); total = base × (1 − discount/100), half-up to 0.01."""
    base = to_money(Decimal(token_count) * token_price(duration_hours))
    total = to_money(base * (MAX_DISCOUNT - Decimal(discount_percent)) / MAX_DISCOUNT)
    return BundlePrices(
        base_price=base,
        total_price=total,
        savings=base - total,
        price_per_token=to_money(total / token_count),
    )


def token_costs(*, total_price: Decimal, token_count: int) -> list[Decimal]:
    """Each token's share of the total: rounded down to 0.01, the remainder on the first token,
    so the shares always sum to exactly `total_price`."""
    share = to_money_down(total_price / token_count)
    costs = [share] * token_count
    costs[0] = total_price - share * (token_count - 1)
    return costs


def validate_bundle_values(
    *, token_count: int, duration_hours: int, scope: str, discount_percent: Decimal
) -> BundlePrices:
    """The bundle invariants; `InvalidInput` (400) for the first one broken."""
    if isinstance(token_count, bool) or not isinstance(token_count, int):
        raise InvalidInput("token_count: must be an integer.", code="invalid_token_count")
    if not 1 <= token_count <= MAX_TOKEN_COUNT:
        raise InvalidInput(
            f"token_count: must be between 1 and {MAX_TOKEN_COUNT}.", code="invalid_token_count"
        )
    if isinstance(duration_hours, bool) or not isinstance(duration_hours, int):
        raise InvalidInput("duration_hours: must be an integer.", code="invalid_duration")
    token_price(duration_hours)  # 400 invalid_duration for an unpriced duration
    validate_scope(scope)
    if not isinstance(discount_percent, Decimal) or not discount_percent.is_finite():
        raise InvalidInput("discount_percent: must be a number.", code="invalid_discount")
    if not Decimal("0") <= discount_percent <= MAX_DISCOUNT:
        raise InvalidInput("discount_percent: must be between 0 and 100.", code="invalid_discount")
    if discount_percent != discount_percent.quantize(Decimal("0.01")):
        raise InvalidInput("discount_percent: at most two decimal places.", code="invalid_discount")
    prices = bundle_prices(
        token_count=token_count, duration_hours=duration_hours, discount_percent=discount_percent
    )
    if prices.total_price <= 0:
        raise InvalidInput(
            "discount_percent: the discount leaves nothing to pay; a bundle must cost at least 0.01 ZNC.",
            code="invalid_discount",
        )
    return prices
