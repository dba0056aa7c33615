"""HTTP models of the routes that add or move credits outside metering: grants, voids,
adjustments, transfers, promo codes and referrals (imported by their routes on first use).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    model_validator,
)

from credit_meter.api.schema_models import (
    catalog_names,
)
from credit_meter.core import clock
from credit_meter.core.wallets import (
    Granted,
)

if TYPE_CHECKING:  # imported by the routes that use them, not on the hot path's cold start
    from credit_meter.billing.grants import Adjusted, GrantLine, Voided
    from credit_meter.billing.promotions import PromoCode
    from credit_meter.billing.referrals import Referred
    from credit_meter.billing.transfers import Transferred

from credit_meter.api.fields import (
    Amount,
    AmountOut,
    Name,
    PageQuery,
    PositiveAmount,
    RequestBody,
    ResponseBody,
    Timestamp,
    TimestampMs,
)


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


class GrantOut(ResponseBody):
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


class GrantLineOut(ResponseBody):
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


class GrantsOut(ResponseBody):
    items: list[GrantLineOut]
    next_cursor: str | None


class VoidOut(ResponseBody):
    grant_id: str
    status: Literal["voided"]
    voided: AmountOut

    @classmethod
    def of(cls, v: Voided) -> VoidOut:
        return cls(grant_id=v.grant_id, status="voided", voided=v.voided)


class AdjustmentOut(ResponseBody):
    adjustment_id: str
    credits: AmountOut
    reason: str

    @classmethod
    def of(cls, a: Adjusted) -> AdjustmentOut:
        return cls(adjustment_id=a.adjustment_id, credits=a.credits, reason=a.reason)


class TransferOut(ResponseBody):
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


class PromoCodeOut(ResponseBody):
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


class ReferralOut(ResponseBody):
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
