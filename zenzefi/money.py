"""Money is Decimal end to end, quantized to 0.01 (half-up; refunds round down)."""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def to_money(value) -> Decimal:
    """Round half-up to 0.01. Floats are refused: they cannot represent money exactly."""
    if isinstance(value, float):
        raise TypeError("Money must not be a float; pass a Decimal, int or str.")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def to_money_down(value) -> Decimal:
    if isinstance(value, float):
        raise TypeError("Money must not be a float; pass a Decimal, int or str.")
    return Decimal(value).quantize(CENT, rounding=ROUND_DOWN)
