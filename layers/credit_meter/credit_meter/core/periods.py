"""Pure wallet lifecycle logic: billing periods, the reset's arithmetic, expiry and voids.

No I/O. Kept apart from :mod:`credit_meter.core.wallets` (what every metering request needs) so the
metering API's cold start does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from credit_meter.core import wallets
from credit_meter.core.catalog import Catalog, Plan
from credit_meter.core.ids import grant_id
from credit_meter.core.money import ZERO
from credit_meter.core.wallets import Bucket

# The allowance: what a reset expires (and may roll over) when the period ends.
ALLOWANCE_SOURCES = ("monthly", "rollover")


def period_at(period_end: int, anchor_day: int, now: int) -> tuple[int, int]:
    """The period (start, end) that contains ``now``, walking on from a period ending at
    ``period_end`` (periods missed entirely — the wallet was not reset — are skipped)."""
    start = datetime.fromtimestamp(period_end, tz=UTC)
    end = wallets.add_month(start, anchor_day)
    while int(end.timestamp()) <= now:
        start, end = end, wallets.add_month(end, anchor_day)
    return int(start.timestamp()), int(end.timestamp())


@dataclass(frozen=True, slots=True)
class Posting:
    kind: str  # expire, grant, overage
    credits: Decimal  # signed: what it adds to the balance
    source: str
    bucket_id: str | None = None
    expires_at: int | None = None
    partial: bool = False  # an expiry that leaves part of the bucket for open holds


@dataclass(frozen=True, slots=True)
class NewPeriod:
    start: int
    end: int
    plan: str
    allowance: Decimal
    overage: bool


@dataclass(frozen=True, slots=True)
class Rolled:
    """A wallet moved forward in time: expired buckets out, a new period's grants in."""

    buckets: list[Bucket]
    drawn_delta: Decimal
    balance_delta: Decimal
    postings: list[Posting]
    period: NewPeriod | None
    due_at: int
    newly_kept: bool = False  # a bucket became ``kept``: the write must record it

    @property
    def changed(self) -> bool:
        return bool(self.postings) or self.period is not None or self.newly_kept


@dataclass(frozen=True, slots=True)
class Terms:
    """What the reset needs of a wallet beyond its buckets."""

    wallet_id: str
    period_end: int
    anchor_day: int
    plan: Plan  # the plan of the period that is ending
    next_plan: Plan  # the plan of the next period (a pending downgrade, else the same)
    next_allowance: Decimal


def roll(
    buckets: list[Bucket],
    drawn: Decimal,
    held: Decimal,
    now: int,
    terms: Terms,
    catalog: Catalog,
) -> Rolled:
    """Move a wallet to ``now``: expire what is past its ``expires_at`` and, if its period has
    ended, apply the plan's rollover and overage rules and grant the new period's allowance.

    Expiring credits that open holds stand on (``held``, in burn-down order) are kept, still
    past their expiry and marked ``kept``, until those holds end: ``available`` never drops
    below zero because of a reset, and a hold can commit what it reserved. Kept credits are
    spent after everything else, so only commits beyond the wallet's other credits reach
    them. The reset job looks at the wallet again (its ``due_at`` stays in the past) and
    expires what the holds no longer need — counting kept credits first as their backing.
    """
    views = wallets.remaining(buckets, drawn)
    owed = wallets.deficit(buckets, drawn)
    ends = now >= terms.period_end
    kept: list[Bucket] = []
    postings: list[Posting] = []
    allowance_left = ZERO
    newly_kept = False
    keep_for = _backing(views, held)
    for view in views:
        b = view.bucket
        if view.remaining <= 0:
            continue
        keep = keep_for[b.id]
        past = b.expires_at is not None and b.expires_at <= now
        if not (past or (ends and b.source in ALLOWANCE_SOURCES)):
            kept.append(wallets.materialise(view))
            continue
        gone = view.remaining - keep
        if gone > 0:
            postings.append(Posting("expire", -gone, b.source, b.id, partial=keep > 0))
            if b.source in ALLOWANCE_SOURCES:
                allowance_left += gone
        if keep > 0:
            granted = b.original if keep != b.original else None
            kept.append(replace(b, amount=keep, granted=granted, kept=True))
            newly_kept = newly_kept or not b.kept
    new_drawn = owed
    period = None
    if ends:
        period, new_drawn = _next_period(now, terms, catalog, allowance_left, owed, kept, postings)
    kept.sort(key=lambda b: wallets.burn_key(b, catalog))
    period_end = period.end if period else terms.period_end
    return Rolled(
        buckets=kept,
        drawn_delta=new_drawn - drawn,
        balance_delta=sum((p.credits for p in postings), ZERO),
        postings=postings,
        period=period,
        due_at=due_at(kept, period_end),
        newly_kept=newly_kept,
    )


def _backing(views: list[wallets.BucketView], held: Decimal) -> dict[str, Decimal]:
    """What the open holds stand on, by bucket: credits kept for holds at an earlier expiry
    first (they were set aside for those holds), then the buckets in burn-down order."""
    backing = max(ZERO, held)
    keep_for: dict[str, Decimal] = {}
    for view in sorted(views, key=lambda v: not v.bucket.kept):
        take = min(max(ZERO, view.remaining), backing)
        keep_for[view.bucket.id] = take
        backing -= take
    return keep_for


def _next_period(
    now: int,
    terms: Terms,
    catalog: Catalog,
    allowance_left: Decimal,
    owed: Decimal,
    kept: list[Bucket],
    postings: list[Posting],
) -> tuple[NewPeriod, Decimal]:
    """The period that follows the ended one: the rollover and the new allowance added to
    ``kept`` and ``postings``, an overdraft forgiven when the plan allows overage. Returns the
    period and what stays drawn."""
    start, end = period_at(terms.period_end, terms.anchor_day, now)
    start_ms = start * 1000
    prio = catalog.sources["monthly"].priority
    new_drawn = owed
    rolled = min(allowance_left, terms.plan.rollover_cap)
    if rolled > 0:
        gid = grant_id(start_ms, terms.wallet_id, "rollover", str(start))
        kept.append(Bucket(gid, "rollover", rolled, prio, start_ms, end))
        postings.append(Posting("grant", rolled, "rollover", gid, end))
    if owed > 0 and terms.plan.overage:
        postings.append(Posting("overage", owed, "overage"))
        new_drawn = ZERO
    if terms.next_allowance > 0:
        gid = grant_id(start_ms, terms.wallet_id, "monthly", str(start))
        kept.append(Bucket(gid, "monthly", terms.next_allowance, prio, start_ms, end))
        postings.append(Posting("grant", terms.next_allowance, "monthly", gid, end))
    period = NewPeriod(
        start, end, terms.next_plan.name, terms.next_allowance, terms.next_plan.overage
    )
    return period, new_drawn


def due_at(buckets: list[Bucket], period_end: int) -> int:
    """When the wallet next needs the reset job: its period's end or a bucket's expiry."""
    expiries = [b.expires_at for b in buckets if b.expires_at is not None]
    return min([period_end, *expiries])


@dataclass(frozen=True, slots=True)
class Removal:
    """What voiding a bucket leaves (see :func:`void`)."""

    buckets: list[Bucket]
    amount: Decimal
    drawn_before: Decimal  # the void is safe only while ``drawn`` has not passed this


def void(buckets: list[Bucket], drawn: Decimal, bucket_id: str) -> Removal | None:
    """Remove a grant nothing has been drawn from; None if it is gone or partly used.

    Remainders are cumulative in burn order, so a bucket untouched by ``drawn`` lies wholly
    after it: removing it changes no other bucket's remainder.
    """
    before = ZERO
    for i, view in enumerate(wallets.remaining(buckets, drawn)):
        b = view.bucket
        if b.id == bucket_id:
            if view.remaining != b.original or drawn > before:
                return None
            return Removal(buckets[:i] + buckets[i + 1 :], b.amount, before)
        before += b.amount
    return None
