"""HTTP request bodies (pydantic) and response bodies, kept apart from domain and stored items.

Amounts arrive as JSON strings or numbers and leave as decimal strings. The same models feed
the OpenAPI document in ``docs/openapi.yaml`` (a test fails when the two drift apart).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    WithJsonSchema,
    model_validator,
)

from credit_meter.api.schema_models import (
    catalog_names,
    decimal_schema,
    not_null,
    one_of_fields,
)
from credit_meter.core import clock
from credit_meter.core.catalog import Catalog, Plan, PricedLine, UsageLine
from credit_meter.core.money import AmountError, fmt, parse_amount
from credit_meter.core.usage import RETURNED, TOKEN_METERS
from credit_meter.core.wallets import (
    BucketView,
    Charge,
    Ended,
    Entry,
    Granted,
    Reservation,
    WalletView,
)
from credit_meter.metering.service import Cost

if TYPE_CHECKING:  # imported by the routes that use them, not on the hot path's cold start
    from credit_meter.billing.grants import Adjusted, GrantLine, Voided
    from credit_meter.billing.promotions import PromoCode
    from credit_meter.billing.referrals import Referred
    from credit_meter.billing.transfers import Transferred

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


def _usage_schema(schema: dict[str, Any]) -> None:
    """For the document: token meters are priced by a model, which they need; no other meter
    takes one."""
    from credit_meter.core.catalog import catalog

    token = sorted(set(TOKEN_METERS) & set(catalog().meters))
    schema["oneOf"] = [
        {
            "required": ["model"],
            "properties": {"meter": {"enum": token}, "model": {"not": {"type": "null"}}},
        },
        {"properties": {"meter": {"not": {"enum": token}}, "model": {"type": "null"}}},
    ]


class UsageIn(RequestBody):
    model_config = ConfigDict(json_schema_extra=_usage_schema)

    meter: Annotated[Name, catalog_names(lambda c: c.meters)]
    quantity: PositiveAmount
    model: Annotated[Name, catalog_names(lambda c: c.models)] | None = None

    def line(self) -> UsageLine:
        return UsageLine(self.meter, self.quantity, self.model)


Usage = Annotated[list[UsageIn], Field(min_length=1, max_length=100)]


class _Costed(RequestBody):
    model_config = ConfigDict(json_schema_extra={"not": not_null("credits", "usage")})

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
    model_config = ConfigDict(json_schema_extra=one_of_fields("credits", "usage"))

    @model_validator(mode="after")
    def _some_cost(self) -> _Required:
        if self.credits is None and self.usage is None:
            raise ValueError("give credits or usage")
        return self


def _wallet_schema(schema: dict[str, Any]) -> None:
    """For the document: ``allowance`` is for a plan with a custom allowance, which needs it."""
    from credit_meter.core.catalog import catalog

    custom = sorted(name for name, plan in catalog().plans.items() if plan.allowance is None)
    schema["oneOf"] = [
        {"required": ["plan", "allowance"], "properties": {"plan": {"enum": custom}}},
        {"properties": {"plan": {"not": {"enum": custom}}, "allowance": {"type": "null"}}},
    ]


class WalletIn(RequestBody):
    model_config = ConfigDict(json_schema_extra=_wallet_schema)

    plan: Annotated[Name, catalog_names(lambda c: c.plans)]
    allowance: NonNegativeAmount | None = None
    anchor_day: Annotated[int, Field(ge=1, le=31, strict=True)] | None = Field(
        default=None,
        description="Day of the month (UTC) each billing period starts; set at creation only.",
    )
    org_id: OrgId | None = Field(
        default=None,
        description="The organisation the wallet belongs to (its usage counts in the org's "
        "report). Set once: a wallet does not move to another organisation.",
    )


class BypassIn(RequestBody):
    """Bypass mode on or off (a self-hosted wallet: its usage is metered, and costs nothing)."""

    enabled: StrictBool


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


# The sources only the service grants (billing refuses them here with 422).
SERVICE_SOURCES = frozenset({"monthly", "rollover", "transfer"})


class GrantIn(RequestBody):
    credits: PositiveAmount
    source: Annotated[Name, catalog_names(lambda c: set(c.sources) - SERVICE_SOURCES)]
    # In UTC, so the same instant written with another offset is the same request.
    expires_at: Annotated[AwareDatetime, AfterValidator(_utc)] | None = None
    priority: Annotated[int, Field(ge=0, le=1000, strict=True)] | None = None


class PageQuery(RequestBody):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


EntryType = Literal[
    "reservation",
    "charge",
    "grant",
    "expire",
    "void",
    "adjustment",
    "transfer",
    "overage",
    "reversal",
]


class TransactionsQuery(PageQuery):
    """The activity log's page and filters (all optional, combined with AND)."""

    day: Day | None = Field(default=None, description="Only this UTC day (YYYY-MM-DD).")
    type: EntryType | None = None
    member_id: Name | None = None
    feature: Name | None = None


class TransactionsCsvQuery(TransactionsQuery):
    limit: Annotated[int, Field(ge=1, le=1000)] = 1000


class GrantsQuery(PageQuery):
    """The same paging as the transactions list."""


Reason = Annotated[str, Field(min_length=1, max_length=200)]
PromoCodeText = Annotated[
    str,
    Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$"),
    AfterValidator(str.upper),
]
Future = Annotated[AwareDatetime, AfterValidator(_utc)]


def _nonzero(value: Decimal) -> Decimal:
    if value == 0:
        raise ValueError("must not be 0")
    return value


class AdjustmentIn(RequestBody):
    credits: Annotated[Amount, AfterValidator(_nonzero)] = Field(
        description="Positive: a manual grant. Negative: credits taken back (may go below 0)."
    )
    reason: Reason


class TransferIn(RequestBody):
    to_wallet_id: Annotated[
        str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
    ]
    credits: PositiveAmount
    reason: Reason | None = None


class PromoCodeIn(RequestBody):
    code: PromoCodeText = Field(description="Letters, digits, _ and -; matched case-insensitively.")
    credits: PositiveAmount
    expires_at: Future | None = Field(default=None, description="Last moment the code redeems.")
    credits_expire_at: Future | None = None
    credits_expire_in_days: Annotated[int, Field(ge=1, le=3650, strict=True)] | None = None
    max_redemptions: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] | None = None

    @model_validator(mode="after")
    def _one_expiry(self) -> PromoCodeIn:
        if self.credits_expire_at is not None and self.credits_expire_in_days is not None:
            raise ValueError("give credits_expire_at or credits_expire_in_days, not both")
        return self

    def promo(self) -> PromoCode:
        from credit_meter.billing.promotions import PromoCode

        def ts(moment: datetime | None) -> int | None:
            return None if moment is None else int(moment.timestamp())

        return PromoCode(
            code=self.code,
            credits=self.credits,
            expires_at=ts(self.expires_at),
            credits_expire_at=ts(self.credits_expire_at),
            credits_expire_in_days=self.credits_expire_in_days,
            max_redemptions=self.max_redemptions,
            redeemed=0,
            created_at=int(clock.now_ts() * 1000),
        )


class RedeemIn(RequestBody):
    code: PromoCodeText


class ReferralIn(RequestBody):
    referrer_wallet_id: Annotated[
        str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
    ]


class VoidIn(RequestBody):
    """No fields."""


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


class SpendingOut(_Out):
    alert_threshold: AmountOut | None = Field(
        description="Alert when this period's use reaches it."
    )
    allowed_limit: AmountOut | None = Field(
        description="No holds or charges beyond it this period."
    )
    remaining: AmountOut | None = Field(
        description="What may still be reserved or charged this period under the limit."
    )


class WalletOut(_Out):
    wallet_id: str
    org_id: str | None = None
    plan: str
    pending_plan: str | None = Field(description="A downgrade that starts with the next period.")
    anchor_day: int
    overage: bool
    period: PeriodOut
    balance: AmountOut
    held: AmountOut
    available: AmountOut
    allowance: AmountOut
    used: AmountOut
    buckets: list[BucketOut]
    state: Literal["ok", "alerting", "depleted", "capped"] = Field(
        description="capped: the spending limit is reached; depleted: nothing left to spend; "
        "alerting: an alert threshold is crossed."
    )
    limits: SpendingOut
    bypass: bool = Field(
        default=False,
        description="Bypass mode (self-hosted installs): every action is recorded, nothing is "
        "charged, no alert or limit fires.",
    )

    @classmethod
    def of(cls, w: WalletView) -> WalletOut:
        return cls(
            wallet_id=w.wallet_id,
            org_id=w.org_id,
            bypass=w.bypass,
            plan=w.plan,
            pending_plan=w.pending_plan,
            anchor_day=w.anchor_day,
            overage=w.overage,
            period=PeriodOut(start=w.period_start, end=w.period_end),
            balance=w.balance,
            held=w.held,
            available=w.available,
            allowance=w.allowance,
            used=w.used,
            buckets=[BucketOut.of(b) for b in w.buckets if b.remaining > 0],
            state=w.state,
            limits=SpendingOut(
                alert_threshold=w.alert_threshold,
                allowed_limit=w.allowed_limit,
                remaining=w.limit_remaining,
            ),
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


class LineOut(_Out):
    category: str
    operation: str = Field(description="The meter.")
    model: str | None
    tier: str | None
    unit: str
    unit_price: AmountOut = Field(description="Credits per unit (token meters: per 1,000).")
    quantity: AmountOut
    cost: AmountOut = Field(description="This line's credits; the lines add up to the entry's.")

    @classmethod
    def of(cls, x: PricedLine) -> LineOut:
        return cls(
            category=x.category,
            operation=x.meter,
            model=x.model,
            tier=x.tier,
            unit=x.unit,
            unit_price=x.unit_price,
            quantity=x.quantity,
            cost=x.cost,
        )


class TokensOut(_Out):
    input: AmountOut
    output: AmountOut
    reasoning: AmountOut


_BILLED: dict[str | None, Literal["credits", "byok", "bypass"]] = {
    None: "credits",
    "byok": "byok",
    "bypass": "bypass",
}


class TransactionOut(_Out):
    transaction_id: str
    type: str
    credits: AmountOut
    balance_after: AmountOut = Field(description="The running balance after this entry.")
    at: TimestampMs
    feature: str | None
    member_id: str | None
    status: str = Field(description="posted, committed, released or expired (a reservation's end).")
    refunded: bool = Field(
        default=False,
        description="A reservation given back whole (released or expired): shown struck "
        "through in an activity log.",
    )
    source: str | None = Field(default=None, description="Grants, expiries, voids: the source.")
    reason: str | None = None
    held: AmountOut | None = Field(default=None, description="Reservations: what was held.")
    lines: list[LineOut] = Field(
        default_factory=list,
        description="The priced usage lines (empty when the cost was given in credits).",
    )
    tokens: TokensOut | None = Field(
        default=None, description="Token counts of the lines, when any line meters tokens."
    )
    billing: Literal["credits", "byok", "bypass"] = Field(
        default="credits",
        description="How the action was priced: in credits; byok (the member's own provider "
        "key paid the AI tokens, which cost 0 credits here; other meters still charge); "
        "bypass (a self-hosted wallet: recorded, not charged).",
    )

    @classmethod
    def of(cls, e: Entry) -> TransactionOut:
        counts = {meter: Decimal(0) for meter in TOKEN_METERS}
        for x in e.lines:
            if x.meter in counts:
                counts[x.meter] += x.quantity
        has_tokens = any(x.meter in counts for x in e.lines)
        return cls(
            transaction_id=e.transaction_id,
            type=e.type,
            credits=e.credits,
            balance_after=e.balance_after,
            at=e.at,
            feature=e.feature,
            member_id=e.member_id,
            status=e.status,
            refunded=e.type == "reservation" and e.status in RETURNED,
            source=e.source,
            reason=e.reason,
            held=e.held,
            lines=[LineOut.of(x) for x in e.lines],
            tokens=TokensOut(
                input=counts["input_tokens"],
                output=counts["output_tokens"],
                reasoning=counts["reasoning_tokens"],
            )
            if has_tokens
            else None,
            billing=_BILLED[e.mode],
        )


class GrantLineOut(_Out):
    grant_id: str
    source: str
    credits: AmountOut
    remaining: AmountOut
    status: Literal["active", "used", "expired", "voided"]
    granted_at: TimestampMs
    expires_at: Timestamp | None
    reason: str | None

    @classmethod
    def of(cls, g: GrantLine) -> GrantLineOut:
        return cls(
            grant_id=g.grant_id,
            source=g.source,
            credits=g.credits,
            remaining=g.remaining,
            status=g.status,  # type: ignore[arg-type]
            granted_at=g.granted_at,
            expires_at=g.expires_at,
            reason=g.reason,
        )


class GrantsOut(_Out):
    items: list[GrantLineOut]
    next_cursor: str | None


class VoidOut(_Out):
    grant_id: str
    status: Literal["voided"]
    voided: AmountOut

    @classmethod
    def of(cls, v: Voided) -> VoidOut:
        return cls(grant_id=v.grant_id, status="voided", voided=v.voided)


class AdjustmentOut(_Out):
    adjustment_id: str
    credits: AmountOut
    reason: str

    @classmethod
    def of(cls, a: Adjusted) -> AdjustmentOut:
        return cls(adjustment_id=a.adjustment_id, credits=a.credits, reason=a.reason)


class TransferOut(_Out):
    transfer_id: str
    from_wallet_id: str
    to_wallet_id: str
    credits: AmountOut
    grant_id: str

    @classmethod
    def of(cls, t: Transferred) -> TransferOut:
        return cls(
            transfer_id=t.transfer_id,
            from_wallet_id=t.from_wallet_id,
            to_wallet_id=t.to_wallet_id,
            credits=t.credits,
            grant_id=t.grant_id,
        )


class PromoCodeOut(_Out):
    code: str
    credits: AmountOut
    expires_at: Timestamp | None
    credits_expire_at: Timestamp | None
    credits_expire_in_days: int | None
    max_redemptions: int | None
    redeemed: int

    @classmethod
    def of(cls, p: PromoCode) -> PromoCodeOut:
        return cls(
            code=p.code,
            credits=p.credits,
            expires_at=p.expires_at,
            credits_expire_at=p.credits_expire_at,
            credits_expire_in_days=p.credits_expire_in_days,
            max_redemptions=p.max_redemptions,
            redeemed=p.redeemed,
        )


class ReferralOut(_Out):
    wallet_id: str
    referrer_wallet_id: str
    grant: GrantOut
    referrer_grant: GrantOut | None = Field(
        description="Null when the referrer already had its maximum of rewarded referrals."
    )

    @classmethod
    def of(cls, r: Referred) -> ReferralOut:
        return cls(
            wallet_id=r.wallet_id,
            referrer_wallet_id=r.referrer_wallet_id,
            grant=GrantOut.of(r.grant),
            referrer_grant=None if r.referrer_grant is None else GrantOut.of(r.referrer_grant),
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
    rollover_cap: AmountOut = Field(description="Unused allowance carried over, at most.")
    purchased_credits: Literal["never_expire", "expire_at_reset"]
    overage: bool = Field(description="Usage may continue below zero; billed, not repaid.")
    welcome_bonus: AmountOut

    @classmethod
    def of(cls, p: Plan) -> PlanOut:
        return cls(
            plan=p.name,
            allowance=p.allowance,
            rollover_cap=p.rollover_cap,
            purchased_credits="expire_at_reset" if p.purchases_expire_at_reset else "never_expire",
            overage=p.overage,
            welcome_bonus=p.welcome_bonus,
        )


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
            plans=[PlanOut.of(p) for p in cat.plans.values()],
        )


class ProblemOut(_Out):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None
    available: AmountOut | None = None  # 402: what the wallet had
    requested: AmountOut | None = None  # 402: what the request needed
    limit: AmountOut | None = None  # 403: the spending limit or member budget
    remaining: AmountOut | None = None  # 403: what is left of it (open holds count as spent)


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON body of a response model (optional fields left out when empty)."""
    if isinstance(model, ProblemOut):
        return model.model_dump(mode="json", exclude_none=True)
    # A meter carries one of its two price fields; the other is left out, not null.
    return model.model_dump(mode="json", by_alias=True, exclude_unset=isinstance(model, PricesOut))
