"""Billing periods: which wallets are due, and the reset that brings one up to now (expiries,
the next period's allowance and rollover, the limit's and budgets' room given back). One
conditional write per wallet (``docs/data-model.md``, "Billing periods and the reset job")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit_meter.billing.buckets import ATTEMPTS, BucketChange, bucket_update
from credit_meter.core import clock, periods
from credit_meter.core.catalog import Catalog, Plan, catalog
from credit_meter.core.errors import Contention
from credit_meter.core.money import ZERO
from credit_meter.core.periods import Posting, Rolled
from credit_meter.storage import items, wallet_record
from credit_meter.storage.records import now_ms
from credit_meter.storage.store import Store, WriteRejected


@dataclass(frozen=True, slots=True)
class Advanced:
    """What the reset job did to one wallet."""

    wallet_id: str
    reset: bool  # a new period started
    expired: Decimal  # credits expired (old allowance, period-bound or expired grants)
    granted: Decimal  # the new period's allowance and rollover


def terms_of(wallet: dict[str, Any], cat: Catalog) -> periods.Terms:
    """The plan of the current period and of the next (a catalog edit applies at reset)."""
    allow = wallet_record.allowance(wallet)
    name = wallet_record.plan(wallet)
    plan = cat.plans.get(name) or Plan(name, allow)
    pending = wallet.get(wallet_record.PENDING_PLAN)
    if pending is not None:
        next_plan = cat.plans.get(pending) or Plan(pending, None)
        next_allowance = Decimal(wallet[wallet_record.PENDING_ALLOWANCE])
    else:
        next_plan = plan
        next_allowance = allow if plan.allowance is None else plan.allowance
    return periods.Terms(
        wallet_id=wallet_record.wallet_id(wallet),
        period_end=wallet_record.period_end(wallet),
        anchor_day=int(wallet.get(wallet_record.ANCHOR_DAY, 1)),
        plan=plan,
        next_plan=next_plan,
        next_allowance=next_allowance,
    )


class Periods:
    """The reset job's use case; plan changes run it first on a wallet whose period ended."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def due_wallets(self) -> Iterator[str]:
        """Every wallet whose period has ended or that has a grant past its expiry."""
        now = Decimal(int(clock.now_ts()))
        for shard in range(wallet_record.DUE_SHARDS):
            for key in self.store.query_index_upto(
                wallet_record.DUE_INDEX, wallet_record.DUE_SHARD, f"D#{shard:02d}",
                wallet_record.DUE_AT, now,
            ):  # fmt: skip
                yield items.wallet_id_of(key["pk"])

    def advance(self, wallet_id: str) -> Advanced:
        """Bring one wallet up to now: expire what is past its expiry and, when its period has
        ended, start the next one (periods.roll). One conditional write; safe to run twice or
        concurrently — the second finds nothing left to do."""
        for _ in range(ATTEMPTS):
            wallet = self.store.get(wallet_record.key(wallet_id))
            if wallet is None:
                return Advanced(wallet_id, False, ZERO, ZERO)
            rolled = periods.roll(
                wallet_record.buckets(wallet),
                wallet_record.drawn(wallet),
                wallet_record.held(wallet),
                int(clock.now_ts()),
                terms_of(wallet, self.catalog),
                self.catalog,
            )
            try:
                self._write_roll(wallet_id, wallet, rolled)
            except WriteRejected:
                continue  # another change (or another run of this job) came first
            expired = -sum((p.credits for p in rolled.postings if p.kind == "expire"), ZERO)
            granted = sum((p.credits for p in rolled.postings if p.kind == "grant"), ZERO)
            return Advanced(wallet_id, rolled.period is not None, expired, granted)
        raise Contention(f"wallet {wallet_id!r} kept changing during its reset")

    def _write_roll(self, wallet_id: str, wallet: dict[str, Any], rolled: Rolled) -> None:
        if not rolled.changed:
            if int(wallet.get(wallet_record.DUE_AT, -1)) != rolled.due_at:
                self._reschedule(wallet_id, wallet, rolled.due_at)  # not due after all
            return
        version = int(wallet[wallet_record.BUCKETS_VERSION])
        at = now_ms()
        # What is expired was computed from the wallet as read. A debit or hold that landed
        # since may have used those very credits: then available would end below zero, so the
        # write is refused and the wallet read again.
        floor = -rolled.balance_delta if rolled.balance_delta < 0 else None
        condition, values = wallet_record.roll_guard(wallet_record.period_end(wallet), floor)
        change = BucketChange(
            buckets=rolled.buckets,
            drawn_delta=rolled.drawn_delta,
            balance_delta=rolled.balance_delta,
            posts=[_roll_post(p, at, version) for p in rolled.postings],
            period_end=wallet_record.period_end(wallet),
            condition=condition,
            values=values,
        )
        if rolled.period is not None:
            change = _next_period(wallet, rolled.period, change)
        self.store.update(bucket_update(wallet_id, wallet, change))

    def _reschedule(self, wallet_id: str, wallet: dict[str, Any], due_at: int) -> None:
        version = wallet[wallet_record.BUCKETS_VERSION]
        self.store.update(wallet_record.reschedule_update(wallet_id, version, due_at))


def _next_period(
    wallet: dict[str, Any], period: periods.NewPeriod, change: BucketChange
) -> BucketChange:
    """The roll's change, starting the next period: its plan, and the usage counters reset.

    Relative: usage committed between the read and this write counts in the new period. The
    spending limit's room and each member budget's room get back what the ended period used.
    """
    budgets = sorted(wallet_record.member_budgets(wallet).items())
    clauses, reset_values, names = wallet_record.period_reset_clauses(
        wallet_record.used(wallet),
        [(tag, wallet_record.budget_used(budget)) for tag, budget in budgets],
    )
    values = {**change.values, **reset_values}
    return BucketChange(
        buckets=change.buckets,
        drawn_delta=change.drawn_delta,
        balance_delta=change.balance_delta,
        posts=change.posts,
        period_end=period.end,
        sets={
            wallet_record.PERIOD_START: period.start,
            wallet_record.PERIOD_END: period.end,
            wallet_record.PLAN: period.plan,
            wallet_record.ALLOWANCE: period.allowance,
            wallet_record.OVERAGE: period.overage,
        },
        removes=(wallet_record.PENDING_PLAN, wallet_record.PENDING_ALLOWANCE),
        clauses=clauses,
        condition=change.condition,
        values=values,
        names=names,
    )


def _roll_post(p: Posting, at: int, version: int) -> dict[str, Any]:
    if p.kind == "grant":
        assert p.bucket_id is not None
        return wallet_record.posting(
            p.bucket_id,
            "grant",
            p.credits,
            "posted",
            at,
            source=p.source,
            bucket_id=p.bucket_id,
            expires_at=p.expires_at,
        )
    if p.kind == "expire":
        assert p.bucket_id is not None
        # A bucket kept in part for open holds expires in steps: a partial step's id also
        # names the bucket-list version it was written at (one write per version); the step
        # that empties the bucket has the plain id.
        step = f"_{version}" if p.partial else ""
        return wallet_record.posting(
            f"exp_{p.bucket_id.removeprefix('grt_')}{step}",
            "expire",
            p.credits,
            "posted",
            at,
            source=p.source,
            bucket_id=p.bucket_id,
            partial=p.partial,
        )
    return wallet_record.posting(
        f"ovg_{at:011x}", "overage", p.credits, "posted", at, reason="deficit billed as overage"
    )
