"""HTTP models of the usage reports (summary, series, CSV export, organisation usage): kept
apart from :mod:`credit_meter.api.models` so the metering routes' cold start never builds them.
Days and months are UTC."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from credit_meter.api.activity_models import TransactionOut
from credit_meter.api.fields import (
    DAY_SCHEMA,
    MAX_YEAR,
    MIN_YEAR,
    MONTH_PATTERN,
    AmountOut,
    RequestBody,
    ResponseBody,
    _day,
)
from credit_meter.api.models import PeriodOut
from credit_meter.core import clock
from credit_meter.core.money import fmt

if TYPE_CHECKING:
    from credit_meter.core.wallets import Entry
    from credit_meter.reports.reports import OrgUsage, Point, Series, Summary

_MONTH_PATTERN = r"[0-9]{4}-(0[1-9]|1[0-2])"
_MONTH = re.compile(_MONTH_PATTERN)


def _year_in_range(value: str) -> str:
    if not MIN_YEAR <= int(value[:4]) <= MAX_YEAR:
        raise ValueError(f"the year must be within {MIN_YEAR}-{MAX_YEAR}")
    return value


MONTH_SCHEMA = {"type": "string", "pattern": f"^{MONTH_PATTERN}$", "description": "YYYY-MM (UTC)."}
Month = Annotated[
    str,
    Field(pattern=f"^{_MONTH_PATTERN}$", description="YYYY-MM (UTC)."),
    AfterValidator(_year_in_range),
    WithJsonSchema(MONTH_SCHEMA),
]
GroupBy = Literal["category", "feature", "model", "tier", "member"]


def _day_or_month(value: str) -> str:
    """A UTC day (YYYY-MM-DD, a real date) or month (YYYY-MM); which one the granularity
    wants is checked with it (:mod:`credit_meter.reports.reports`)."""
    if _MONTH.fullmatch(value):
        return _year_in_range(value)
    try:
        return _day(value).isoformat()
    except ValueError as err:
        raise ValueError(f"{err} (or a month, YYYY-MM)") from None


DayOrMonth = Annotated[
    str,
    AfterValidator(_day_or_month),
    WithJsonSchema({"anyOf": [DAY_SCHEMA, MONTH_SCHEMA]}),
]


class SeriesQuery(RequestBody):
    granularity: Literal["day", "month"] = "day"
    from_: DayOrMonth | None = Field(
        default=None,
        alias="from",
        description="First day (YYYY-MM-DD) or month (YYYY-MM), included. Default: 29 days "
        "(11 months) before `to`.",
    )
    to: DayOrMonth | None = Field(
        default=None, description="Last day or month, included. Default: today (this month)."
    )
    group_by: GroupBy | None = None


class OrgUsageQuery(RequestBody):
    from_: Month | None = Field(default=None, alias="from", description="First month (UTC).")
    to: Month | None = Field(default=None, description="Last month. Default: this month.")


class ModelUsageOut(ResponseBody):
    model: str
    credits: AmountOut


class TierUsageOut(ResponseBody):
    tier: str
    credits: AmountOut
    models: list[ModelUsageOut]


class CategoryOut(ResponseBody):
    category: str = Field(description="`uncategorized`: actions costed in plain credits.")
    credits: AmountOut
    tiers: list[TierUsageOut] = Field(description="Token meters only: by model tier.")


class ForecastOut(ResponseBody):
    burn_rate_per_day: AmountOut = Field(description="Credits a day over the last 7 UTC days.")
    runs_out_on: date | None = Field(
        description="The UTC day credits run out at that rate; null when they last until the "
        "period renews (or nothing was used)."
    )


class SummaryOut(ResponseBody):
    wallet_id: str
    plan: str
    period: PeriodOut
    renews_at: str = Field(description="When the period ends and the allowance renews.")
    allowance: AmountOut
    used: AmountOut
    remaining: AmountOut = Field(description="Available credits: balance less open holds.")
    percent_used: str | None = Field(description="used / allowance in percent, one decimal.")
    held: AmountOut
    balance: AmountOut
    breakdown: list[CategoryOut] = Field(
        description="The period's usage by category, tier and model (from the rollups: "
        "may trail `used` by the stream's delay)."
    )
    forecast: ForecastOut

    @classmethod
    def of(cls, s: Summary) -> SummaryOut:
        return cls(
            wallet_id=s.wallet_id,
            plan=s.plan,
            period=PeriodOut(start=s.period_start, end=s.period_end),
            renews_at=clock.iso(s.period_end),
            allowance=s.allowance,
            used=s.used,
            remaining=s.remaining,
            percent_used=None if s.percent_used is None else str(s.percent_used),
            held=s.held,
            balance=s.balance,
            breakdown=[
                CategoryOut(
                    category=c.category,
                    credits=c.credits,
                    tiers=sorted(
                        (
                            TierUsageOut(
                                tier=tier,
                                credits=sum(models.values(), start=Decimal(0)),
                                models=sorted(
                                    (ModelUsageOut(model=m, credits=v) for m, v in models.items()),
                                    key=lambda x: (-x.credits, x.model),
                                ),
                            )
                            for tier, models in c.tiers.items()
                        ),
                        key=lambda t: (-t.credits, t.tier),
                    ),
                )
                for c in s.breakdown
            ],
            forecast=ForecastOut(
                burn_rate_per_day=s.forecast.burn_rate_per_day,
                runs_out_on=s.forecast.runs_out_on,
            ),
        )


class GroupOut(ResponseBody):
    key: str | None = Field(
        description="The category, feature, model, tier or member; null: usage in none (an "
        "action costed in plain credits, or one with no member)."
    )
    credits: AmountOut


class PointOut(ResponseBody):
    date: str = Field(description="YYYY-MM-DD (day) or YYYY-MM (month), UTC.")
    credits: AmountOut
    actions: int = Field(description="Charges and committed reservations.")
    returned: int = Field(description="Reservations released or expired (refunded actions).")
    groups: list[GroupOut] | None = Field(default=None, description="With `group_by` only.")

    @classmethod
    def of(cls, p: Point, grouped: bool) -> PointOut:
        return cls(
            date=p.label,
            credits=p.credits,
            actions=p.actions,
            returned=p.returned,
            groups=sorted(
                (GroupOut(key=k, credits=v) for k, v in p.groups.items()),
                key=lambda g: (-g.credits, g.key or ""),
            )
            if grouped
            else None,
        )


class SeriesOut(ResponseBody):
    wallet_id: str
    granularity: Literal["day", "month"]
    from_: str = Field(serialization_alias="from")
    to: str
    group_by: GroupBy | None
    total: AmountOut
    points: list[PointOut]

    @classmethod
    def of(cls, s: Series) -> SeriesOut:
        return cls(
            wallet_id=s.wallet_id,
            granularity=s.granularity,  # type: ignore[arg-type]
            from_=s.first,
            to=s.last,
            group_by=s.group_by,  # type: ignore[arg-type]
            total=s.total,
            points=[PointOut.of(p, s.group_by is not None) for p in s.points],
        )


class OrgMonthOut(ResponseBody):
    month: str
    credits: AmountOut


class OrgWalletOut(ResponseBody):
    wallet_id: str
    credits: AmountOut
    actions: int


class OrgMemberOut(ResponseBody):
    wallet_id: str
    member_id: str | None = Field(description="null: usage not attributed to a member.")
    credits: AmountOut


class ConsumerOut(ResponseBody):
    member_id: str
    credits: AmountOut = Field(description="Over all the organisation's wallets.")


class OrgUsageOut(ResponseBody):
    org_id: str
    from_: str = Field(serialization_alias="from")
    to: str
    credits: AmountOut
    actions: int
    months: list[OrgMonthOut]
    wallets: list[OrgWalletOut]
    members: list[OrgMemberOut]
    top_consumers: list[ConsumerOut] = Field(description="The 10 members who used the most.")

    @classmethod
    def of(cls, o: OrgUsage) -> OrgUsageOut:
        return cls(
            org_id=o.org_id,
            from_=o.first,
            to=o.last,
            credits=o.credits,
            actions=o.actions,
            months=[OrgMonthOut(month=m, credits=c) for m, c in o.months],
            wallets=[
                OrgWalletOut(wallet_id=w.wallet_id, credits=w.credits, actions=w.actions)
                for w in o.wallets
            ],
            members=[
                OrgMemberOut(wallet_id=x.wallet_id, member_id=x.member_id, credits=x.credits)
                for x in o.members
            ],
            top_consumers=[ConsumerOut(member_id=m, credits=c) for m, c in o.top_consumers],
        )


CSV_COLUMNS = (
    "at",
    "transaction_id",
    "type",
    "status",
    "refunded",
    "feature",
    "member_id",
    "credits",
    "balance_after",
    "held",
    "lines",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "source",
    "reason",
    "billing",
)


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (leading = + - @ quoted)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not _number(text)):
        return "'" + text
    return text


def _number(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", text))


def transactions_csv(entries: list[Entry]) -> str:
    """The activity log's rows as CSV (one row per entry; ``lines`` lists the priced usage
    lines as ``operation model quantity x unit_price = cost`` joined by ``; ``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        row = TransactionOut.of(e)
        lines = "; ".join(
            " ".join(
                part
                for part in (
                    x.meter,
                    x.model or "",
                    fmt(x.quantity),
                    "x",
                    fmt(x.unit_price),
                    "=",
                    fmt(x.cost),
                )
                if part
            )
            for x in e.lines
        )
        tokens = row.tokens
        writer.writerow(
            [
                _cell(v)
                for v in (
                    clock.iso(e.at / 1000),
                    e.transaction_id,
                    e.type,
                    e.status,
                    "true" if row.refunded else "false",
                    e.feature,
                    e.member_id,
                    fmt(e.credits),
                    fmt(e.balance_after),
                    None if e.held is None else fmt(e.held),
                    lines,
                    None if tokens is None else fmt(tokens.input),
                    None if tokens is None else fmt(tokens.output),
                    None if tokens is None else fmt(tokens.reasoning),
                    e.source,
                    e.reason,
                    row.billing,
                )
            ]
        )
    return out.getvalue()
