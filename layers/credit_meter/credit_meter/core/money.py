"""Exact credit amounts: ``Decimal`` with at most six fractional digits, never binary floats."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

SCALE = 6
QUANTUM = Decimal(1).scaleb(-SCALE)  # 0.000001
ZERO = Decimal(0)
# Amounts above this are refused as input: far beyond any wallet, and it keeps every sum well
# inside DynamoDB's 38 significant digits.
MAX_AMOUNT = Decimal(10) ** 12


# Strings hold plain decimals only: ASCII digits, an optional sign and fraction.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class AmountError(ValueError):
    """An input amount that is not a finite decimal with at most six fractional digits."""


def parse_amount(value: object) -> Decimal:
    """Parse a request amount given as a JSON string or number (never a float, see ``json``)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise AmountError("must be a decimal number or a string holding one")
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise AmountError("is not a plain decimal number like 12.5")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise AmountError("is not a decimal number") from None
    if not amount.is_finite():
        raise AmountError("must be finite")
    # copy_abs and the comparison never round; abs() or quantize() under the default context
    # raise decimal.Overflow past its Emax (1e1000000): a refusal, not a crash.
    if amount.copy_abs() > MAX_AMOUNT:
        raise AmountError(f"must not exceed {MAX_AMOUNT:f}")
    if amount != amount.quantize(QUANTUM):
        raise AmountError(f"has more than {SCALE} fractional digits")
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
