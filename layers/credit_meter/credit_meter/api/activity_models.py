"""HTTP models of the activity log: its query, the ledger entries with their priced usage lines
and token counts, and its pages (JSON; the CSV export is in report_models)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    Field,
)

from credit_meter.core.catalog import PricedLine
from credit_meter.core.usage import RETURNED, TOKEN_METERS
from credit_meter.core.wallets import (
    Entry,
)

if TYPE_CHECKING:  # imported by the routes that use them, not on the hot path's cold start
    pass

from credit_meter.api.fields import AmountOut, Day, Name, PageQuery, ResponseBody, TimestampMs

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


class LineOut(ResponseBody):
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


class TokensOut(ResponseBody):
    input: AmountOut
    output: AmountOut
    reasoning: AmountOut


_BILLED: dict[str | None, Literal["credits", "byok", "bypass"]] = {
    None: "credits",
    "byok": "byok",
    "bypass": "bypass",
}


class TransactionOut(ResponseBody):
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


class TransactionsOut(ResponseBody):
    items: list[TransactionOut]
    next_cursor: str | None
