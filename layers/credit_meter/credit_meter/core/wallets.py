"""Pure wallet logic: the burn-down order, bucket remainders and grants. No I/O.

Buckets are kept in burn-down order with the amount each held when the list was last rebuilt;
debits on the hot path only advance one counter, ``drawn``, so a debit is a single arithmetic
update with no read. What each bucket has left is derived: bucket *i* of amounts a₁…aₙ has
``min(aᵢ, max(0, a₁+…+aᵢ − drawn))``. Anything drawn beyond the sum is the overdraft a commit may
leave behind (docs/domain.md, the overdraft rule), which the next credit repays first.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from credit_meter.core.catalog import Catalog, PricedLine
from credit_meter.core.money import ZERO

NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class Bucket:
    id: str
    source: str
    amount: Decimal
    priority: int
    created_at: int
    expires_at: int | None = None
    granted: Decimal | None = None  # the grant's original amount when ``amount`` is less
    # Past its expiry, kept only for holds open when it expired (lifecycle.roll): spent last.
    kept: bool = False

    @property
    def original(self) -> Decimal:
        return self.amount if self.granted is None else self.granted


@dataclass(frozen=True, slots=True)
class BucketView:
    bucket: Bucket
    remaining: Decimal


# -- what the operations return ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalletView:
    wallet_id: str
    plan: str
    period_start: int
    period_end: int
    balance: Decimal
    held: Decimal
    available: Decimal
    allowance: Decimal
    used: Decimal
    buckets: list[BucketView]
    anchor_day: int = 1
    pending_plan: str | None = None
    overage: bool = False
    state: Literal["ok", "alerting", "depleted", "capped"] = "ok"  # alerts.wallet_state
    alert_threshold: Decimal | None = None  # the spending limit's alert, credits this period
    allowed_limit: Decimal | None = None
    limit_remaining: Decimal | None = None  # may still be reserved or charged this period
    org_id: str | None = None  # the organisation the wallet belongs to
    bypass: bool = False  # a self-hosted install: everything recorded, nothing charged


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    status: str
    credits: Decimal
    expires_at: int


@dataclass(frozen=True, slots=True)
class Ended:
    """A reservation's end. ``replayed``: this answers a retry; nothing was posted now."""

    reservation_id: str
    status: str
    charged: Decimal
    released: Decimal
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    charged: Decimal
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Granted:
    grant_id: str
    credits: Decimal
    source: str
    priority: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class Entry:
    transaction_id: str
    type: str
    credits: Decimal
    balance_after: Decimal
    at: int  # epoch milliseconds
    feature: str | None
    member_id: str | None
    status: str
    source: str | None = None
    reason: str | None = None
    held: Decimal | None = None  # reservations: what was held
    mode: str | None = None  # byok or bypass: priced so rather than in credits
    lines: tuple[PricedLine, ...] = ()  # the priced usage lines (actions costed by usage)


def burn_key(bucket: Bucket, catalog: Catalog) -> tuple[bool, int, float, int, int, str]:
    """Lower priority first, soonest expiry (never last), promotional before paid, oldest —
    and credits kept past their expiry for open holds after everything else."""
    source = catalog.sources.get(bucket.source)
    rank = source.rank if source else 1
    expires = NEVER if bucket.expires_at is None else float(bucket.expires_at)
    return (bucket.kept, bucket.priority, expires, rank, bucket.created_at, bucket.id)


def remaining(buckets: list[Bucket], drawn: Decimal) -> list[BucketView]:
    """What each bucket has left after ``drawn`` credits were taken in list order."""
    views = []
    cumulative = ZERO
    for bucket in buckets:
        cumulative += bucket.amount
        left = min(bucket.amount, max(ZERO, cumulative - drawn))
        views.append(BucketView(bucket, left))
    return views


def deficit(buckets: list[Bucket], drawn: Decimal) -> Decimal:
    """The overdraft: what was drawn beyond everything the buckets held."""
    return max(ZERO, drawn - sum((b.amount for b in buckets), ZERO))


@dataclass(frozen=True, slots=True)
class Rebased:
    buckets: list[Bucket]
    drawn_delta: Decimal  # add to the stored ``drawn`` (relative, so racing debits stay counted)
    repaid: Decimal  # how much of the new grant repaid an overdraft


def add_bucket(buckets: list[Bucket], drawn: Decimal, new: Bucket, catalog: Catalog) -> Rebased:
    """Insert a grant: materialise remainders, repay any overdraft first, re-sort.

    ``drawn`` is the value read; the caller applies ``drawn_delta`` relative to whatever
    ``drawn`` is at write time, so debits that land between the read and the write are kept
    (they are then counted against the new order — they were concurrent with the grant).
    """
    owed = deficit(buckets, drawn)
    repaid = min(owed, new.amount)
    kept = [materialise(v) for v in remaining(buckets, drawn) if v.remaining > 0]
    if new.amount - repaid > 0:
        granted = new.amount if repaid > 0 else None  # part of it went to repay: "used"
        kept.append(replace(new, amount=new.amount - repaid, granted=granted))
    kept.sort(key=lambda b: burn_key(b, catalog))
    return Rebased(buckets=kept, drawn_delta=(owed - repaid) - drawn, repaid=repaid)


def take_back(
    buckets: list[Bucket], drawn: Decimal, from_ids: set[str], amount: Decimal, catalog: Catalog
) -> Rebased:
    """Take ``amount`` back (a refunded or disputed payment): first from what the buckets in
    ``from_ids`` have left, the rest as a debit in burn-down order, which may overdraw the
    wallet (docs/domain.md, the overdraft rule: taking credits back may drive the balance
    negative).

    Like :func:`add_bucket`, ``drawn_delta`` is relative: debits that land between the read
    and the write stay counted. ``repaid`` is what came out of the named buckets.
    """
    owed = deficit(buckets, drawn)
    left = amount
    kept = []
    for view in remaining(buckets, drawn):
        if view.remaining <= 0:
            continue
        bucket = materialise(view)
        if bucket.id in from_ids and left > 0:
            taken = min(left, bucket.amount)
            left -= taken
            if bucket.amount == taken:
                continue
            bucket = replace(bucket, amount=bucket.amount - taken, granted=bucket.original)
        kept.append(bucket)
    kept.sort(key=lambda b: burn_key(b, catalog))
    return Rebased(buckets=kept, drawn_delta=owed + left - drawn, repaid=amount - left)


def materialise(view: BucketView) -> Bucket:
    """The bucket rebuilt with what it has left, remembering what it was granted."""
    b = view.bucket
    granted = b.original if view.remaining != b.original else None
    return replace(b, amount=view.remaining, granted=granted)


# -- periods --------------------------------------------------------------------------------


def add_month(moment: datetime, anchor_day: int) -> datetime:
    """The same time one month later on the anchor day, clamped to the month's last day."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def first_period(created: datetime, anchor_day: int | None = None) -> tuple[datetime, datetime]:
    """A wallet's first billing period, in UTC. Without an anchor it starts on the creation day;
    with one, on the latest anchor date (clamped to short months) not after the creation day."""
    day = created.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if anchor_day is None:
        return day, add_month(day, day.day)
    year, month = day.year, day.month
    start = day.replace(day=min(anchor_day, calendar.monthrange(year, month)[1]))
    if start > day:
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        start = day.replace(
            year=year, month=month, day=min(anchor_day, calendar.monthrange(year, month)[1])
        )
    return start, add_month(start, anchor_day)
