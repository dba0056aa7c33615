"""The metering operations: one call per API route, no knowledge of API Gateway.

Each write is a single conditional DynamoDB request (a transaction where an operation record
must commit with the wallet update); a refused condition is explained from the old item the
refusal returns, so the common paths cost exactly one round trip:

* reserve — one UpdateItem on the wallet (with an Idempotency-Key, a two-item transaction that
  also writes the reservation's record);
* commit / release — one transaction: the wallet update and the reservation's record;
* charge — one transaction: the wallet update and the charge's record;
* grant — a read, then a transaction guarded by the bucket-list version (grants are rare).

``docs/data-model.md`` lists every condition and why it makes its write safe under races.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter import clock, items
from credit_meter.catalog import Catalog, UsageLine, catalog
from credit_meter.common import Request, decode_cursor, encode_cursor
from credit_meter.common import key_reused as _key_reused
from credit_meter.common import no_wallet as _no_wallet
from credit_meter.common import now_ms as _now_ms
from credit_meter.common import record_ttl as _record_ttl
from credit_meter.domain import Charge, Ended, Entry, Reservation, WalletView
from credit_meter.errors import (
    Conflict,
    Contention,
    FieldProblem,
    InsufficientCredits,
    InvalidRequest,
    ReservationNotFound,
)
from credit_meter.ids import ReservationId, charge_id, op_key
from credit_meter.items import CHARGE_RECORD, ENTRY_PREFIX, HOLD_RECORD
from credit_meter.money import ZERO, fmt
from credit_meter.store import Put, Store, Update, WriteRejected

_GRANT_ATTEMPTS = 10
MAX_GRANT_SECONDS = 100 * 365 * 86400
# A hold keeps a prefix of its request's digest: enough to tell a retry from another body,
# and it keeps the hot wallet item small.
HOLD_DIGEST_CHARS = 16
# A wallet with open holds is looked at by the sweeper at least this often, so no hold outlives
# its expires_at by much more than this plus the sweeper's schedule (docs/data-model.md).
SWEEP_REVISIT_SECONDS = 60
# Holds expired per write: one wallet update plus one record per hold, well inside DynamoDB's
# 100-item transactions.
EXPIRE_BATCH = 24
_EXPIRE_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Cost:
    """What an action costs: explicit credits or a usage list priced through the catalog."""

    credits: Decimal | None = None
    usage: tuple[UsageLine, ...] | None = None

    def resolve(self, cat: Catalog) -> Decimal | None:
        if self.credits is not None:
            return self.credits
        if self.usage is not None:
            return cat.price(list(self.usage))
        return None


@dataclass(slots=True)
class SweepReport:
    wallets: int = 0
    expired: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _insufficient(requested: Decimal, wallet: dict[str, Any]) -> InsufficientCredits:
    available = Decimal(wallet["avail"])
    return InsufficientCredits(
        f"{fmt(requested)} credits requested, {fmt(available)} available",
        available=available,
        requested=requested,
    )


class Metering:
    """The metering service (the hot path, hold expiry, reads). Holds a :class:`Store`; cheap
    to make, one per invocation is fine. :class:`credit_meter.billing.Billing` extends it with
    plans, periods and grants."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def get_wallet(self, wallet_id: str) -> WalletView:
        return items.wallet_view(self._wallet_item(wallet_id))

    def _wallet_item(self, wallet_id: str) -> dict[str, Any]:
        item = self.store.get(items.wallet_key(wallet_id))
        if item is None:
            raise _no_wallet(wallet_id)
        return item

    # -- reservations ----------------------------------------------------------------------

    def reserve(
        self,
        wallet_id: str,
        cost: Cost,
        request: Request,
        feature: str,
        member_id: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> Reservation:
        credits = cost.resolve(self.catalog)
        if credits is None:
            raise InvalidRequest([FieldProblem("credits", "give credits or usage")])
        ttl = expires_in_seconds or self.catalog.default_hold_seconds
        if ttl > self.catalog.max_hold_seconds:
            raise InvalidRequest(
                [FieldProblem("expires_in_seconds", f"at most {self.catalog.max_hold_seconds}")]
            )
        key = op_key(wallet_id, "reserve", request.idempotency_key)
        expires_at = int(clock.now_ts()) + ttl
        hold: dict[str, Any] = {
            "c": credits,
            "x": expires_at,
            "f": feature,
            "h": request.request_hash[:HOLD_DIGEST_CHARS],
        }
        if member_id is not None:
            hold["m"] = member_id
        # The sweeper's next look: kept if one is already due (it may be late by at most
        # SWEEP_REVISIT_SECONDS for a hold shorter than those already open).
        sweep_at = min(expires_at, int(clock.now_ts()) + SWEEP_REVISIT_SECONDS)
        update = Update(
            key=items.wallet_key(wallet_id),
            expression=(
                "SET hd.#k = :hold, held = held + :c, avail = avail - :c, "
                "sweep_at = if_not_exists(sweep_at, :sweep), "
                "sweep_shard = if_not_exists(sweep_shard, :shard) REMOVE posts"
            ),
            condition=(
                "attribute_exists(pk) AND (avail >= :c OR ovr = :overage) "
                "AND attribute_not_exists(hd.#k) AND size(hd) < :max_open"
            ),
            names={"#k": key},
            values={
                ":hold": hold,
                ":c": credits,
                ":max_open": self.catalog.max_open_holds,
                ":overage": True,
                ":sweep": sweep_at,
                ":shard": items.sweep_shard(wallet_id),
            },
        )
        try:
            if request.idempotency_key is None:
                # The random key makes an SDK-level retry of this very request fail its
                # condition and come back below as a replay, never as a second hold.
                self.store.update(update)
            else:
                # The record outlives the hold, so a retry after commit still finds it.
                record = {
                    **items.record_key(wallet_id, HOLD_RECORD, key),
                    "kind": "reservation",
                    "st": "held",
                    "rh": request.request_hash,
                    "c": credits,
                    "x": expires_at,
                    "at": _now_ms(),
                    "ttl": _record_ttl(),
                }
                self.store.transact(update, Put(record))
        except WriteRejected as rejected:
            return self._explain_reserve(wallet_id, key, credits, request, rejected)
        return Reservation(str(ReservationId(key, credits)), "held", credits, expires_at)

    def _explain_reserve(
        self,
        wallet_id: str,
        key: str,
        credits: Decimal,
        request: Request,
        rejected: WriteRejected,
    ) -> Reservation:
        wallet = rejected.old[0]
        record = rejected.old[1] if len(rejected.old) > 1 else None
        hold = (wallet or {}).get("hd", {}).get(key)
        if record is not None:  # this key was used before, maybe long ago: replay or refuse
            first, same = record, request.request_hash == record["rh"]
        elif hold is not None:  # the first request's hold is still open (digest prefix)
            first, same = hold, request.request_hash[:HOLD_DIGEST_CHARS] == hold["h"]
        elif wallet is None:
            raise _no_wallet(wallet_id)
        elif len(wallet.get("hd", {})) >= self.catalog.max_open_holds:
            raise Conflict(
                f"the wallet has {self.catalog.max_open_holds} open reservations; "
                "commit or release some first",
                code="too-many-open-reservations",
            )
        else:
            raise _insufficient(credits, wallet)
        if not same:
            raise _key_reused()
        held = Decimal(first["c"])
        return Reservation(str(ReservationId(key, held)), "held", held, int(first["x"]))

    def commit(self, wallet_id: str, reservation_id: str, cost: Cost, request: Request) -> Ended:
        rid = self._parse_rid(reservation_id)
        charged = cost.resolve(self.catalog)
        if charged is None:
            charged = rid.credits
        return self._end(wallet_id, rid, charged, "committed", request)

    def release(self, wallet_id: str, reservation_id: str, request: Request) -> Ended:
        return self._end(wallet_id, self._parse_rid(reservation_id), ZERO, "released", request)

    @staticmethod
    def _parse_rid(text: str) -> ReservationId:
        rid = ReservationId.parse(text)
        if rid is None:
            raise ReservationNotFound(f"reservation {text!r} does not exist")
        return rid

    def _end(
        self,
        wallet_id: str,
        rid: ReservationId,
        charged: Decimal,
        status: str,
        request: Request,
    ) -> Ended:
        """Commit or release: the hold leaves the wallet and its record says how, atomically.

        Commit never fails for lack of credits (the work happened): charging more than was
        held takes the excess from what is available and may leave the balance negative.
        """
        held = rid.credits
        released = max(ZERO, held - charged)
        at = _now_ms()
        post = items.posting(str(rid), "reservation", -charged, status, at, hold_key=rid.key)
        wallet_update = Update(
            key=items.wallet_key(wallet_id),
            expression=(
                "REMOVE hd.#k SET held = held - :h, avail = avail + :r, bal = bal - :a, "
                "drawn = drawn + :a, used = used + :a, seq = seq + :one, posts = :posts"
            ),
            condition="hd.#k.c = :h",
            names={"#k": rid.key},
            values={
                ":h": held,
                ":r": held - charged,
                ":a": charged,
                ":one": 1,
                ":posts": [post],
            },
        )
        record_update = Update(
            key=items.record_key(wallet_id, HOLD_RECORD, rid.key),
            expression=(
                "SET kind = :kind, st = :st, eh = :eh, charged = :a, released = :rel, "
                "c = :h, ended = :at, #ttl = :ttl"
            ),
            condition="attribute_not_exists(pk) OR st = :held",
            names={"#ttl": "ttl"},
            values={
                ":kind": "reservation",
                ":st": status,
                ":eh": request.request_hash,
                ":a": charged,
                ":rel": released,
                ":h": held,
                ":at": at,
                ":held": "held",
                ":ttl": _record_ttl(),
            },
        )
        try:
            self.store.transact(wallet_update, record_update)
        except WriteRejected:
            return self._explain_end(wallet_id, rid, status, request)
        return Ended(str(rid), status, charged, released)

    def _explain_end(
        self, wallet_id: str, rid: ReservationId, status: str, request: Request
    ) -> Ended:
        record = self.store.get(items.record_key(wallet_id, HOLD_RECORD, rid.key))
        if record is None or record.get("st") == "held" or Decimal(record["c"]) != rid.credits:
            self._wallet_item(wallet_id)  # 404 for the wallet first
            raise ReservationNotFound(f"reservation {rid} does not exist")
        ended = record["st"]
        if ended != status or record["eh"] != request.request_hash:
            raise Conflict(
                f"reservation {rid} was already {ended}"
                + ("" if ended != status else " with another body"),
                code=f"reservation-{ended}",
            )
        charged, released = Decimal(record["charged"]), Decimal(record["released"])
        return Ended(str(rid), ended, charged, released, replayed=True)

    # -- one-shot charges and grants ----------------------------------------------------------

    def charge(
        self,
        wallet_id: str,
        cost: Cost,
        request: Request,
        feature: str,
        member_id: str | None = None,
    ) -> Charge:
        amount = cost.resolve(self.catalog)
        if amount is None:
            raise InvalidRequest([FieldProblem("credits", "give credits or usage")])
        key = op_key(wallet_id, "charge", request.idempotency_key)
        cid = charge_id(key)
        at = _now_ms()
        post = items.posting(
            cid, "charge", -amount, "posted", at, feature=feature, member_id=member_id
        )
        wallet_update = Update(
            key=items.wallet_key(wallet_id),
            expression=(
                "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, used = used + :a, "
                "seq = seq + :one, posts = :posts"
            ),
            condition="attribute_exists(pk) AND (avail >= :a OR ovr = :overage)",
            values={":a": amount, ":one": 1, ":posts": [post], ":overage": True},
        )
        record = {
            **items.record_key(wallet_id, CHARGE_RECORD, key),
            "kind": "charge",
            "rh": request.request_hash,
            "charged": amount,
            "at": at,
            "ttl": _record_ttl(),
        }
        try:
            self.store.transact(wallet_update, Put(record))
        except WriteRejected as rejected:
            wallet, first = rejected.old
            if first is not None:
                if first["rh"] != request.request_hash:
                    raise _key_reused() from None
                return Charge(cid, Decimal(first["charged"]), replayed=True)
            if wallet is None:
                raise _no_wallet(wallet_id) from None
            raise _insufficient(amount, wallet) from None
        return Charge(cid, amount)

    def quote(self, wallet_id: str, usage: list[UsageLine]) -> Decimal:
        credits = self.catalog.price(usage)
        self._wallet_item(wallet_id)
        return credits

    # -- expiry ----------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Expire the holds past their ``expires_at`` in every wallet the sweep index says is
        due. A wallet that fails is reported and left due, so the next run tries it again."""
        report = SweepReport()
        now = Decimal(int(clock.now_ts()))
        for shard in range(items.SWEEP_SHARDS):
            due = self.store.query_index_upto(
                items.SWEEP_INDEX, "sweep_shard", f"S#{shard:02d}", "sweep_at", now
            )
            for key in due:
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
            wallet = self.store.get(items.wallet_key(wallet_id))
            if wallet is None:
                return expired_total
            now = int(clock.now_ts())
            holds = wallet.get("hd", {})
            due = sorted(
                ((k, h) for k, h in holds.items() if int(h["x"]) <= now),
                key=lambda kh: int(kh[1]["x"]),
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
        self,
        wallet_id: str,
        holds: dict[str, Any],
        batch: list[tuple[str, dict[str, Any]]],
        now: int,
    ) -> None:
        keys = {k for k, _ in batch}
        remaining = [int(h["x"]) for k, h in holds.items() if k not in keys]
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        conditions = []
        for i, (key, hold) in enumerate(batch):
            names[f"#k{i}"] = key
            values[f":c{i}"] = Decimal(hold["c"])
            conditions.append(f"hd.#k{i}.c = :c{i}")
        if remaining:
            schedule = "SET sweep_at = :next"
            values[":next"] = min([*remaining, now + SWEEP_REVISIT_SECONDS])
        else:
            # Off the index only if no hold opened since the read.
            schedule = "REMOVE sweep_at"
            conditions.append("size(hd) = :open")
            values[":open"] = len(batch)
        if not batch:
            self.store.update(
                Update(
                    key=items.wallet_key(wallet_id),
                    expression=schedule,
                    condition=" AND ".join(["attribute_exists(pk)", *conditions]),
                    values=values,
                )
            )
            return
        released = sum((Decimal(h["c"]) for _, h in batch), ZERO)
        at = _now_ms()
        posts = [
            items.posting(
                str(ReservationId(key, Decimal(hold["c"]))),
                "reservation",
                ZERO,
                "expired",
                at,
                hold_key=key,
            )
            for key, hold in batch
        ]
        removes = ", ".join(f"hd.#k{i}" for i in range(len(batch)))
        set_part = schedule.removeprefix("SET ") + ", " if remaining else ""
        remove_sweep = "" if remaining else ", sweep_at"
        values.update({":r": released, ":n": len(batch), ":posts": posts})
        wallet_update = Update(
            key=items.wallet_key(wallet_id),
            expression=(
                f"SET {set_part}held = held - :r, avail = avail + :r, seq = seq + :n, "
                f"posts = :posts REMOVE {removes}{remove_sweep}"
            ),
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )
        records = [
            Update(
                key=items.record_key(wallet_id, HOLD_RECORD, key),
                expression=(
                    "SET kind = :kind, st = :st, eh = :eh, charged = :zero, released = :c, "
                    "c = :c, ended = :at, #ttl = :ttl"
                ),
                condition="attribute_not_exists(pk) OR st = :held",
                names={"#ttl": "ttl"},
                values={
                    ":kind": "reservation",
                    ":st": "expired",
                    ":eh": "",
                    ":zero": ZERO,
                    ":c": Decimal(hold["c"]),
                    ":at": at,
                    ":held": "held",
                    ":ttl": _record_ttl(),
                },
            )
            for key, hold in batch
        ]
        self.store.transact(wallet_update, *records)

    # -- reads -----------------------------------------------------------------------------

    def transactions(
        self, wallet_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Entry], str | None]:
        """The wallet's ledger, newest first, a page at a time."""
        start = None if cursor is None else decode_cursor(cursor, ENTRY_PREFIX)
        found, last = self.store.query_page(items.wallet_pk(wallet_id), ENTRY_PREFIX, limit, start)
        if not found:
            self._wallet_item(wallet_id)  # an empty page of an unknown wallet is a 404
        return [items.entry(i) for i in found], None if last is None else encode_cursor(last)
