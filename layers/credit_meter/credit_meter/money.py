"""Exact credit amounts: ``Decimal`` with at most six fractional digits, never binary floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

SCALE = 6
QUANTUM = Decimal(1).scaleb(-SCALE)  # 0.000001
ZERO = Decimal(0)
# Amounts above this are refused as input: far beyond any wallet, and it keeps every sum well
# inside DynamoDB's 38 significant digits.
MAX_AMOUNT = Decimal(10) ** 12


class AmountError(ValueError):
    """An input amount that is not a finite decimal with at most six fractional digits."""


def parse_amount(value: object) -> Decimal:
    """Parse a request amount given as a JSON string or number (never a float, see ``json``)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise AmountError("must be a decimal number or a string holding one")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise AmountError("is not a decimal number") from None
    if not amount.is_finite():
        raise AmountError("must be finite")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -SCALE and amount != amount.quantize(QUANTUM):
        raise AmountError(f"has more than {SCALE} fractional digits")
    if abs(amount) > MAX_AMOUNT:
        raise AmountError(f"must not exceed {MAX_AMOUNT:f}")
    return amount.quantize(QUANTUM)


def quantize(amount: Decimal) -> Decimal:
    """Round a computed amount (a price times a quantity) half-up to six fractional digits."""
    return amount.quantize(QUANTUM, rounding="ROUND_HALF_UP")


def fmt(amount: Decimal) -> str:
    """Render an amount as the API does: plain decimal, no exponent, no trailing zeros."""
    normal = amount.quantize(QUANTUM).normalize()
    if normal == 0:
        return "0"
    text = f"{normal:f}"
    return text


def to_micros(amount: Decimal) -> int:
    return int(amount.quantize(QUANTUM) * 1_000_000)


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / 1_000_000).quantize(QUANTUM)
