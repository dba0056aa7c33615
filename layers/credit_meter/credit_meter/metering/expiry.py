"""Hold expiry: the sweeper ends holds past their ``expires_at`` exactly as a release would
(status ``expired``), racing late commits on the same conditions (docs/data-model.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from credit_meter.core import clock
from credit_meter.core.errors import Contention
from credit_meter.core.ids import ReservationId
from credit_meter.core.money import ZERO
from credit_meter.metering import hold_records
from credit_meter.metering.holds import SWEEP_REVISIT_SECONDS
from credit_meter.storage import items, wallet_record
from credit_meter.storage.records import now_ms
from credit_meter.storage.store import Store, WriteRejected
from credit_meter.storage.wallet_record import Item

# Holds expired per write: one wallet update plus one record per hold, well inside DynamoDB's
# 100-item transactions.
EXPIRE_BATCH = 24
_EXPIRE_ATTEMPTS = 10


@dataclass(slots=True)
class SweepReport:
    wallets: int = 0
    expired: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    more: bool = False  # stopped at its limit with wallets still due


class HoldExpiry:
    def __init__(self, store: Store) -> None:
        self.store = store

    def sweep(self, limit: int | None = None) -> SweepReport:
        """Expire the holds past their ``expires_at`` in every wallet the sweep index says is
        due (at most ``limit`` wallets). A wallet that fails is reported and left due, so the
        next run tries it again."""
        report = SweepReport()
        now = Decimal(int(clock.now_ts()))
        for shard in range(wallet_record.SWEEP_SHARDS):
            due = self.store.query_index_upto(
                wallet_record.SWEEP_INDEX,
                wallet_record.SWEEP_SHARD,
                f"S#{shard:02d}",
                wallet_record.SWEEP_AT,
                now,
            )
            for key in due:
                if limit is not None and report.wallets + len(report.failed) >= limit:
                    report.more = True
                    return report
                wallet_id = items.wallet_id_of(key["pk"])
                try:
                    report.expired += self.expire_holds(wallet_id)
                    report.wallets += 1
                except Exception as error:  # one wallet must not stop the others
                    report.failed[wallet_id] = f"{type(error).__name__}: {error}"
        return report

    def expire_holds(self, wallet_id: str) -> int:
        """End every hold of the wallet that is past its ``expires_at``; returns how many.

        Each write ends a batch of holds exactly as a release would (status ``expired``) and
        reschedules the wallet's next sweep, conditioned on those holds still being open: a
        late commit that wins the race makes the write fail, and the wallet is read again.
        """
        expired_total = 0
        for _ in range(_EXPIRE_ATTEMPTS):
            wallet = self.store.get(wallet_record.key(wallet_id))
            if wallet is None:
                return expired_total
            now = int(clock.now_ts())
            holds = wallet_record.open_holds(wallet)
            due = sorted(
                ((k, h) for k, h in holds.items() if wallet_record.hold_expires_at(h) <= now),
                key=lambda kh: wallet_record.hold_expires_at(kh[1]),
            )
            batch = due[:EXPIRE_BATCH]
            try:
                self._expire(wallet_id, holds, batch, now)
            except WriteRejected:
                continue  # a hold ended (or a new one opened) meanwhile: look again
            expired_total += len(batch)
            if len(due) <= EXPIRE_BATCH:
                return expired_total
        raise Contention(f"wallet {wallet_id!r} kept changing while its holds were expired")

    def _expire(
        self, wallet_id: str, holds: dict[str, Item], batch: list[tuple[str, Item]], now: int
    ) -> None:
        at = now_ms()
        posts = []
        records = []
        for key, hold in batch:
            credits = wallet_record.hold_credits(hold)
            tag, mode = wallet_record.hold_budget_tag(hold), wallet_record.hold_mode(hold)
            rid = ReservationId(key, credits, tag, mode)
            posts.append(
                wallet_record.posting(
                    str(rid), "reservation", ZERO, "expired", at, hold_key=key, mode=mode
                )
            )
            records.append(
                hold_records.ended(wallet_id, key, "expired", "", credits, ZERO, at, tag, mode)
            )
        wallet_update = wallet_record.expiry_update(
            wallet_id, holds, batch, now + SWEEP_REVISIT_SECONDS, posts
        )
        if not batch:
            self.store.update(wallet_update)
            return
        self.store.transact(wallet_update, *records)
