"""HTTP request bodies (pydantic) and response bodies of the wallet and metering routes, kept
apart from domain and stored items.

Amounts arrive as JSON strings or numbers and leave as decimal strings. The same models feed
the OpenAPI document in ``docs/openapi.yaml`` (a test fails when the two drift apart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)

from credit_meter.api.schema_models import (
    catalog_names,
    not_null,
    one_of_fields,
)
from credit_meter.core.catalog import Catalog, Plan, UsageLine
from credit_meter.core.usage import TOKEN_METERS
from credit_meter.core.wallets import (
    BucketView,
    Charge,
    Ended,
    Reservation,
    WalletView,
)
from credit_meter.metering.service import Cost

if TYPE_CHECKING:  # imported by the routes that use them, not on the hot path's cold start
    pass

from credit_meter.api.fields import (
    AmountOut,
    Name,
    NonNegativeAmount,
    OrgId,
    PositiveAmount,
    RequestBody,
    ResponseBody,
    Timestamp,
)


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


class PeriodOut(ResponseBody):
    start: Timestamp
    end: Timestamp


class BucketOut(ResponseBody):
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


class SpendingOut(ResponseBody):
    alert_threshold: AmountOut | None = Field(
        description="Alert when this period's use reaches it."
    )
    allowed_limit: AmountOut | None = Field(
        description="No holds or charges beyond it this period."
    )
    remaining: AmountOut | None = Field(
        description="What may still be reserved or charged this period under the limit."
    )


class WalletOut(ResponseBody):
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


class ReservationOut(ResponseBody):
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


class CommitOut(ResponseBody):
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


class ReleaseOut(ResponseBody):
    reservation_id: str
    status: Literal["released"]
    released: AmountOut

    @classmethod
    def of(cls, e: Ended) -> ReleaseOut:
        return cls(reservation_id=e.reservation_id, status="released", released=e.released)


class ChargeOut(ResponseBody):
    charge_id: str
    charged: AmountOut

    @classmethod
    def of(cls, c: Charge) -> ChargeOut:
        return cls(charge_id=c.charge_id, charged=c.charged)


class QuoteOut(ResponseBody):
    credits: AmountOut


class MeterOut(ResponseBody):
    meter: str
    unit: str
    category: str
    credits_per_unit: AmountOut | None = Field(
        default=None, description="Credits per unit (meters not priced by model)."
    )
    credits_per_unit_by_tier: dict[str, AmountOut] | None = Field(
        default=None, description="Token meters: credits per 1,000 tokens by the model's tier."
    )


class ModelTierOut(ResponseBody):
    model: str
    tier: str


class PlanOut(ResponseBody):
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


class PricesOut(ResponseBody):
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


class ProblemOut(ResponseBody):
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
