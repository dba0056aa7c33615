"""Pure wallet logic: the burn-down order, bucket remainders and grants. No I/O.

Buckets are kept in burn-down order with the amount each held when the list was last rebuilt;
debits on the hot path only advance one counter, ``drawn``, so a debit is a single arithmetic
update with no read. What each bucket has left is derived: bucket *i* of amounts a₁…aₙ has
``min(aᵢ, max(0, a₁+…+aᵢ − drawn))``. Anything drawn beyond the sum is the overdraft a commit may
leave behind (DESIGN §2), which the next credit repays first.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from credit_meter.catalog import Catalog
from credit_meter.money import ZERO

NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class Bucket:
    id: str
    source: str
    amount: Decimal
    priority: int
    created_at: int
    expires_at: int | None = None


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


def burn_key(bucket: Bucket, catalog: Catalog) -> tuple[int, float, int, int, str]:
    """Lower priority first, soonest expiry (never last), promotional before paid, oldest."""
    source = catalog.sources.get(bucket.source)
    rank = source.rank if source else 1
    expires = NEVER if bucket.expires_at is None else float(bucket.expires_at)
    return (bucket.priority, expires, rank, bucket.created_at, bucket.id)


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
    kept = [replace(v.bucket, amount=v.remaining) for v in remaining(buckets, drawn)]
    kept = [b for b in kept if b.amount > 0]
    if new.amount - repaid > 0:
        kept.append(replace(new, amount=new.amount - repaid))
    kept.sort(key=lambda b: burn_key(b, catalog))
    return Rebased(buckets=kept, drawn_delta=(owed - repaid) - drawn, repaid=repaid)


def add_month(moment: datetime, anchor_day: int) -> datetime:
    """The same time one month later on the anchor day, clamped to the month's last day."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def first_period(created: datetime) -> tuple[datetime, datetime]:
    """A wallet's first billing period: from its creation day (UTC midnight) for one month."""
    start = created.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, add_month(start, start.day)
