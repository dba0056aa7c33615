"""HTTP request bodies (pydantic) and response bodies, kept apart from domain and stored items.

Amounts arrive as JSON strings or numbers and leave as decimal strings. The same models feed
the OpenAPI document in ``docs/openapi.yaml`` (a test fails when the two drift apart).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from credit_meter import clock
from credit_meter.catalog import Catalog, UsageLine
from credit_meter.domain import BucketView, Charge, Ended, Entry, Granted, Reservation, WalletView
from credit_meter.money import AmountError, fmt, parse_amount
from credit_meter.service import Cost

_AMOUNT_SCHEMA = {
    "oneOf": [
        {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
        {"type": "number"},
    ],
    "description": "Credits: a decimal with at most 6 fractional digits, as string or number.",
}


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
PositiveAmount = Annotated[Amount, AfterValidator(_positive)]
NonNegativeAmount = Annotated[Amount, AfterValidator(_not_negative)]
AmountOut = Annotated[
    Decimal,
    PlainSerializer(fmt, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,6})?$"}),
]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.:@/-]*$")]
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


class UsageIn(RequestBody):
    meter: Name
    quantity: PositiveAmount
    model: Name | None = None

    def line(self) -> UsageLine:
        return UsageLine(self.meter, self.quantity, self.model)


Usage = Annotated[list[UsageIn], Field(min_length=1, max_length=100)]


class _Costed(RequestBody):
    credits: PositiveAmount | None = None
    usage: Usage | None = None

    @model_validator(mode="after")
    def _one_cost(self) -> _Costed:
        if self.credits is not None and self.usage is not None:
            raise ValueError("give either credits or usage, not both")
        return self

    def cost(self) -> Cost:
        usage = None if self.usage is None else tuple(u.line() for u in self.usage)
        return Cost(self.credits, usage)


class _Required(_Costed):
    @model_validator(mode="after")
    def _some_cost(self) -> _Required:
        if self.credits is None and self.usage is None:
            raise ValueError("give credits or usage")
        return self


class WalletIn(RequestBody):
    plan: Name
    allowance: NonNegativeAmount | None = None


class ReserveIn(_Required):
    feature: Name
    member_id: Name | None = None
    expires_in_seconds: Annotated[int, Field(ge=1, le=86400, strict=True)] | None = None


class CommitIn(_Costed):
    """No cost means "charge what was held"; a zero cost is a free action."""

    credits: NonNegativeAmount | None = None


class ReleaseIn(RequestBody):
    """No fields: a release takes no cost."""


class ChargeIn(_Required):
    feature: Name
    member_id: Name | None = None


class QuoteIn(RequestBody):
    usage: Usage

    def lines(self) -> list[UsageLine]:
        return [u.line() for u in self.usage]


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


class GrantIn(RequestBody):
    credits: PositiveAmount
    source: Name
    # In UTC, so the same instant written with another offset is the same request.
    expires_at: Annotated[AwareDatetime, AfterValidator(_utc)] | None = None
    priority: Annotated[int, Field(ge=0, le=1000, strict=True)] | None = None


class TransactionsQuery(RequestBody):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


# -- responses --------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class PeriodOut(_Out):
    start: Timestamp
    end: Timestamp


class BucketOut(_Out):
    source: str
    remaining: AmountOut
    expires_at: Timestamp | None
    priority: int

    @classmethod
    def of(cls, view: BucketView) -> BucketOut:
        b = view.bucket
        return cls(
            source=b.source,
            remaining=view.remaining,
            expires_at=b.expires_at,
            priority=b.priority,
        )


class WalletOut(_Out):
    wallet_id: str
    plan: str
    period: PeriodOut
    balance: AmountOut
    held: AmountOut
    available: AmountOut
    allowance: AmountOut
    used: AmountOut
    buckets: list[BucketOut]

    @classmethod
    def of(cls, w: WalletView) -> WalletOut:
        return cls(
            wallet_id=w.wallet_id,
            plan=w.plan,
            period=PeriodOut(start=w.period_start, end=w.period_end),
            balance=w.balance,
            held=w.held,
            available=w.available,
            allowance=w.allowance,
            used=w.used,
            buckets=[BucketOut.of(b) for b in w.buckets if b.remaining > 0],
        )


class ReservationOut(_Out):
    reservation_id: str
    status: Literal["held"]
    credits: AmountOut
    expires_at: Timestamp

    @classmethod
    def of(cls, r: Reservation) -> ReservationOut:
        return cls(
            reservation_id=r.reservation_id,
            status="held",
            credits=r.credits,
            expires_at=r.expires_at,
        )


class CommitOut(_Out):
    reservation_id: str
    status: Literal["committed"]
    charged: AmountOut
    released: AmountOut

    @classmethod
    def of(cls, e: Ended) -> CommitOut:
        return cls(
            reservation_id=e.reservation_id,
            status="committed",
            charged=e.charged,
            released=e.released,
        )


class ReleaseOut(_Out):
    reservation_id: str
    status: Literal["released"]
    released: AmountOut

    @classmethod
    def of(cls, e: Ended) -> ReleaseOut:
        return cls(reservation_id=e.reservation_id, status="released", released=e.released)


class ChargeOut(_Out):
    charge_id: str
    charged: AmountOut

    @classmethod
    def of(cls, c: Charge) -> ChargeOut:
        return cls(charge_id=c.charge_id, charged=c.charged)


class QuoteOut(_Out):
    credits: AmountOut


class GrantOut(_Out):
    grant_id: str
    credits: AmountOut
    source: str
    priority: int
    expires_at: Timestamp | None

    @classmethod
    def of(cls, g: Granted) -> GrantOut:
        return cls(
            grant_id=g.grant_id,
            credits=g.credits,
            source=g.source,
            priority=g.priority,
            expires_at=g.expires_at,
        )


class TransactionOut(_Out):
    transaction_id: str
    type: str
    credits: AmountOut
    balance_after: AmountOut
    at: TimestampMs
    feature: str | None
    member_id: str | None
    status: str

    @classmethod
    def of(cls, e: Entry) -> TransactionOut:
        return cls(
            transaction_id=e.transaction_id,
            type=e.type,
            credits=e.credits,
            balance_after=e.balance_after,
            at=e.at,
            feature=e.feature,
            member_id=e.member_id,
            status=e.status,
        )


class TransactionsOut(_Out):
    items: list[TransactionOut]
    next_cursor: str | None


class MeterOut(_Out):
    meter: str
    unit: str
    category: str
    credits_per_unit: AmountOut | None = Field(
        default=None, description="Credits per unit (meters not priced by model)."
    )
    credits_per_unit_by_tier: dict[str, AmountOut] | None = Field(
        default=None, description="Token meters: credits per 1,000 tokens by the model's tier."
    )


class ModelTierOut(_Out):
    model: str
    tier: str


class PlanOut(_Out):
    plan: str
    allowance: AmountOut | None = Field(description="Monthly allowance; null for a custom plan.")


class PricesOut(_Out):
    meters: list[MeterOut]
    models: list[ModelTierOut]
    plans: list[PlanOut]

    @classmethod
    def of(cls, cat: Catalog) -> PricesOut:
        meters = []
        for meter in cat.meters.values():
            price: dict[str, Any] = (
                {"credits_per_unit_by_tier": {t: p[meter.name] for t, p in cat.tiers.items()}}
                if meter.per_tier
                else {"credits_per_unit": meter.credits_per_unit}
            )
            meters.append(
                MeterOut(meter=meter.name, unit=meter.unit, category=meter.category, **price)
            )
        return cls(
            meters=meters,
            models=[ModelTierOut(model=m, tier=t) for m, t in cat.models.items()],
            plans=[PlanOut(plan=p, allowance=a) for p, a in cat.plans.items()],
        )


class ProblemOut(_Out):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None
    available: AmountOut | None = None  # 402: what the wallet had
    requested: AmountOut | None = None  # 402: what the request needed


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON body of a response model (optional fields left out when empty)."""
    if isinstance(model, ProblemOut):
        return model.model_dump(mode="json", exclude_none=True)
    # A meter carries one of its two price fields; the other is left out, not null.
    return model.model_dump(mode="json", exclude_unset=isinstance(model, PricesOut))
