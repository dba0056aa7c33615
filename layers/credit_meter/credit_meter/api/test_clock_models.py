"""HTTP models of the test clock (``/v1/test-clock``, test mode only): kept apart from
:mod:`credit_meter.api.models` so no other route builds them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from credit_meter.api.fields import RequestBody, ResponseBody, Timestamp

if TYPE_CHECKING:
    from credit_meter.billing.test_clock import ClockPosition

MAX_ADVANCE_SECONDS = 400 * 86_400  # a year and a month: every schedule comes due at least once


class ClockAdvanceIn(RequestBody):
    """How far to move the service's clock forward."""

    advance_seconds: Annotated[int, Field(ge=1, le=MAX_ADVANCE_SECONDS, strict=True)] = Field(
        description="Seconds to move the clock forward: 1 to 400 days' worth."
    )


class ClockOut(ResponseBody):
    """Where the service's clock stands (and, after an advance, what the schedules did)."""

    now: Timestamp = Field(description="The service's time: the real time plus the offset.")
    offset_seconds: int = Field(description="How far the clock is ahead of the real time.")
    test_mode: bool = Field(description="Always true: without test mode the route is a 404.")
    holds_expired: int = Field(0, description="Reservations the hold sweeper expired.")
    wallets_reset: int = Field(0, description="Wallets whose period the reset renewed.")
    more_due: bool = Field(
        False,
        description="The schedules' work went past this call's bound: the rest is done by "
        "the schedules (or the next call).",
    )

    @classmethod
    def of(cls, position: ClockPosition, now: int) -> ClockOut:
        return cls(
            now=now,
            offset_seconds=position.offset_seconds,
            test_mode=True,
            holds_expired=position.holds_expired,
            wallets_reset=position.wallets_reset,
            more_due=position.more_due,
        )
