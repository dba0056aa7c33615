"""Test clocks (test mode only): move the service's clock forward and run, before answering,
the scheduled work that time made due — the hold sweeper's and the monthly reset's (which also
expires grants) — so a test sees their effects right after the call.

In a deployment the schedules would get there too, a few minutes later; running them here
through the same use cases makes the effects immediate. Each step is idempotent, so the
schedules running at the same moment do no harm. The work is bounded per call
(:data:`MAX_WALLETS` per schedule); what is left stays due for the schedules or the next call.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from credit_meter.billing.periods import Periods
from credit_meter.core import clock
from credit_meter.core.errors import FieldProblem, InvalidRequest
from credit_meter.metering.service import Metering
from credit_meter.storage import test_clock
from credit_meter.storage.store import Store

MAX_WALLETS = 200  # per schedule and call: the answer stays within the function's timeout


@dataclass(frozen=True, slots=True)
class ClockPosition:
    offset_seconds: int
    holds_expired: int = 0
    wallets_reset: int = 0
    more_due: bool = False  # work left past the bound: the schedules (or another call) do it


class ClockControl:
    """The test clock's use case. Callers check :func:`test_clock.test_mode` first."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()

    def position(self) -> ClockPosition:
        return ClockPosition(test_clock.read_offset(self.store))

    def advance(self, seconds: int) -> ClockPosition:
        try:
            offset = test_clock.add_offset(self.store, seconds)
        except test_clock.OffsetLimit as limit:
            raise InvalidRequest([FieldProblem("advance_seconds", str(limit))]) from None
        clock.set_offset(offset)  # this invocation runs at the new time from here on
        # Holds first: in real time the sweeper ends a stale hold within minutes, long before
        # a period's end, so the reset finds it ended.
        swept = Metering(self.store).sweep(limit=MAX_WALLETS)
        periods = Periods(self.store)
        due = list(islice(periods.due_wallets(), MAX_WALLETS + 1))
        reset = sum(periods.advance(wallet_id).reset for wallet_id in due[:MAX_WALLETS])
        return ClockPosition(
            offset,
            holds_expired=swept.expired,
            wallets_reset=reset,
            more_due=swept.more or bool(swept.failed) or len(due) > MAX_WALLETS,
        )
