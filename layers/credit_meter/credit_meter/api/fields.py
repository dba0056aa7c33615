"""The building blocks of the HTTP models: amounts (JSON strings or numbers in, decimal strings
out), names, ids, days and timestamps, and the request and response base classes.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from credit_meter.api.schema_models import (
    decimal_schema,
)
from credit_meter.core import clock
from credit_meter.core.money import AmountError, fmt, parse_amount

if TYPE_CHECKING:  # imported by the routes that use them, not on the hot path's cold start
    pass


_AMOUNT_SCHEMA = decimal_schema(sign="non-zero")


def _amount(value: object) -> Decimal:
    try:
        return parse_amount(value)
    except AmountError as err:
        raise ValueError(f"amount {err}") from None


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


Amount = Annotated[Decimal, BeforeValidator(_amount), WithJsonSchema(_AMOUNT_SCHEMA)]


PositiveAmount = Annotated[Amount, AfterValidator(_positive), WithJsonSchema(decimal_schema())]


NonNegativeAmount = Annotated[
    Amount, AfterValidator(_not_negative), WithJsonSchema(decimal_schema(sign="non-negative"))
]


AmountOut = Annotated[
    Decimal,
    PlainSerializer(fmt, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,6})?$"}),
]


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.:@/-]*$")]


def _day(value: object) -> date:
    """A UTC day written YYYY-MM-DD (ASCII digits, a real date, a year a report may name)."""
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError("must be a day, YYYY-MM-DD")
    year = int(value[:4])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"the year must be within {MIN_YEAR}-{MAX_YEAR}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a date") from None


MIN_YEAR, MAX_YEAR = 1970, 9998  # a day or month a report may name


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# For the document: the years MIN_YEAR-MAX_YEAR, months and days as a pattern ("format: date"
# rules out the days a month does not have).
YEAR_PATTERN = r"(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"


MONTH_PATTERN = YEAR_PATTERN + r"-(0[1-9]|1[0-2])"


DAY_PATTERN = MONTH_PATTERN + r"-(0[1-9]|[12][0-9]|3[01])"


DAY_SCHEMA = {
    "type": "string",
    "format": "date",
    "pattern": f"^{DAY_PATTERN}$",
    "description": "YYYY-MM-DD (UTC).",
}


Day = Annotated[date, BeforeValidator(_day), WithJsonSchema(DAY_SCHEMA)]


# Wallet and organisation ids (they appear in paths): the one rule for both.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}"


OrgId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]


Timestamp = Annotated[
    int,
    PlainSerializer(lambda ts: clock.iso(ts), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


TimestampMs = Annotated[
    int,
    PlainSerializer(lambda ms: clock.iso(ms / 1000), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class RequestBody(BaseModel):
    # Built on first use: a cold start pays only for the models its first request needs.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def request_hash(self, route: str) -> str:
        """A digest of the route and the canonical body: "the same request" for idempotency."""
        canonical = json.dumps(
            self.model_dump(mode="json", exclude_none=True), sort_keys=True, default=str
        )
        return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


class PageQuery(RequestBody):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


# The base of every response model: frozen, and built on first use (not at import, which the
# metering function's cold start would pay).
class ResponseBody(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)
