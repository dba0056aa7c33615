"""HTTP models of the routes that set limits, alert thresholds and member budgets: kept apart
from :mod:`credit_meter.api.models` so the metering routes' cold start never builds them."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from credit_meter.api.fields import AmountOut, NonNegativeAmount, RequestBody, ResponseBody
from credit_meter.api.models import PeriodOut
from credit_meter.api.schema_models import any_case, decimal_schema
from credit_meter.api.topup_models import Currency
from credit_meter.core.alerts import MAX_THRESHOLDS, Threshold

if TYPE_CHECKING:
    from credit_meter.controls.controls import Alerts, Limits, MemberBudget
    from credit_meter.core.offers import FiatTopups

_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
State = Literal["ok", "alerting", "depleted", "capped"]


def _limits_schema(schema: dict[str, Any]) -> None:
    """For the document: amounts may be given in the wallet's top-up currency only."""
    from credit_meter.core.catalog import catalog

    fiat = catalog().topups.fiat
    currency: dict[str, Any] = {"not": {}}  # no top-ups by amount: no currency is taken
    if fiat is not None:
        currency = {"type": "string", "pattern": any_case(fiat.currency)}
    schema["properties"]["currency"]["anyOf"][0] = currency


class LimitsIn(RequestBody):
    """The period's spending alert and hard limit; null (or left out) removes one."""

    model_config = ConfigDict(json_schema_extra=_limits_schema)

    alert_threshold: NonNegativeAmount | None = None
    allowed_limit: NonNegativeAmount | None = None
    currency: Currency | None = Field(
        default=None,
        description="Amounts are in this currency (the wallet's top-up currency) instead of "
        "credits; they are converted at its rate.",
    )

    @model_validator(mode="after")
    def _threshold_within_limit(self) -> LimitsIn:
        if (
            self.alert_threshold is not None
            and self.allowed_limit is not None
            and self.alert_threshold > self.allowed_limit
        ):
            raise ValueError("alert_threshold must not exceed allowed_limit")
        return self


class FiatLimitsOut(ResponseBody):
    currency: str
    alert_threshold: AmountOut | None
    allowed_limit: AmountOut | None
    used: AmountOut
    remaining: AmountOut | None


class LimitsOut(ResponseBody):
    wallet_id: str
    period: PeriodOut
    alert_threshold: AmountOut | None
    allowed_limit: AmountOut | None
    used: AmountOut = Field(description="Credits charged this period.")
    held: AmountOut = Field(description="Credits in open reservations (they count as spent).")
    remaining: AmountOut | None = Field(
        description="What may still be reserved or charged this period under the limit."
    )
    state: State
    fiat: FiatLimitsOut | None = Field(
        description="The same amounts in the top-up currency, where credits are sold by amount."
    )

    @classmethod
    def of(cls, limits: Limits, fiat: FiatTopups | None) -> LimitsOut:
        money = None
        if fiat is not None:
            rate = fiat.credits_per_unit

            def conv(credits: Decimal | None, rounding: str = ROUND_HALF_EVEN) -> Decimal | None:
                if credits is None:
                    return None
                return (credits / rate).quantize(_CENT, rounding=rounding)

            money = FiatLimitsOut(
                currency=fiat.currency,
                alert_threshold=conv(limits.alert_threshold),
                allowed_limit=conv(limits.allowed_limit),
                used=conv(limits.used) or Decimal(0),
                # never shown as more than is left
                remaining=conv(limits.remaining, ROUND_DOWN),
            )
        return cls(
            wallet_id=limits.wallet_id,
            period=PeriodOut(start=limits.period_start, end=limits.period_end),
            alert_threshold=limits.alert_threshold,
            allowed_limit=limits.allowed_limit,
            used=limits.used,
            held=limits.held,
            remaining=limits.remaining,
            state=limits.state,
            fiat=money,
        )


def _unique(thresholds: list[ThresholdIn]) -> list[ThresholdIn]:
    seen = {(t.type, t.value) for t in thresholds}
    if len(seen) != len(thresholds):
        raise ValueError("thresholds must not repeat")
    return thresholds


def _threshold_schema(schema: dict[str, Any]) -> None:
    """For the document: each type's range (consumed: above 0 up to 1000 percent; remaining:
    0 to 100 percent; credits: any amount)."""
    percent = "Percent of the period's allowance."
    schema["oneOf"] = [
        {
            "properties": {
                "type": {"enum": ["consumed_percent"]},
                "value": decimal_schema(3, description=percent),
            }
        },
        {
            "properties": {
                "type": {"enum": ["remaining_percent"]},
                "value": decimal_schema(2, sign="non-negative", description=percent),
            }
        },
        {"properties": {"type": {"enum": ["remaining_credits"]}}},
    ]


class ThresholdIn(RequestBody):
    model_config = ConfigDict(json_schema_extra=_threshold_schema)

    type: Literal["consumed_percent", "remaining_percent", "remaining_credits"]
    value: NonNegativeAmount = Field(
        description="Percent of the period's allowance (consumed up to 1000, remaining up to "
        "100), or credits for remaining_credits."
    )

    @model_validator(mode="after")
    def _in_range(self) -> ThresholdIn:
        top = {"consumed_percent": Decimal(1000), "remaining_percent": _HUNDRED}.get(self.type)
        if top is not None and self.value > top:
            raise ValueError(f"a {self.type} threshold is at most {top}")
        if self.type == "consumed_percent" and self.value == 0:
            raise ValueError("a consumed_percent threshold must be greater than 0")
        return self

    def threshold(self) -> Threshold:
        return Threshold(self.type, self.value)


class AlertsIn(RequestBody):
    thresholds: (
        Annotated[list[ThresholdIn], Field(max_length=MAX_THRESHOLDS), AfterValidator(_unique)]
        | None
    ) = Field(description="null: back to the defaults (75, 90, 100% consumed); []: none.")


class ThresholdOut(ResponseBody):
    type: Literal["consumed_percent", "remaining_percent", "remaining_credits"]
    value: AmountOut
    crossed: bool


class AlertsOut(ResponseBody):
    wallet_id: str
    thresholds: list[ThresholdOut]
    defaults: bool = Field(description="The wallet uses the default thresholds.")
    state: State

    @classmethod
    def of(cls, a: Alerts) -> AlertsOut:
        return cls(
            wallet_id=a.wallet_id,
            thresholds=[
                ThresholdOut(type=s.threshold.type, value=s.threshold.value, crossed=s.crossed)
                for s in a.thresholds
            ],
            defaults=a.defaults,
            state=a.state,
        )


class MemberBudgetIn(RequestBody):
    budget: NonNegativeAmount | None = Field(
        description="Credits the member may use each period; null: no cap (usage still counted)."
    )


class MemberBudgetOut(ResponseBody):
    wallet_id: str
    member_id: str
    period: PeriodOut
    budget: AmountOut | None
    used: AmountOut = Field(description="Charged to the budget this period.")
    held: AmountOut = Field(description="In the member's open reservations.")
    remaining: AmountOut | None

    @classmethod
    def of(cls, b: MemberBudget) -> MemberBudgetOut:
        return cls(
            wallet_id=b.wallet_id,
            member_id=b.member_id,
            period=PeriodOut(start=b.period_start, end=b.period_end),
            budget=b.budget,
            used=b.used,
            held=b.held,
            remaining=b.remaining,
        )


class MemberBudgetsOut(ResponseBody):
    items: list[MemberBudgetOut]
