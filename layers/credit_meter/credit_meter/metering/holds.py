"""Reservations: reserve credits up front, then commit the actual cost or release them.

* reserve — one UpdateItem on the wallet (with an Idempotency-Key, a two-item transaction that
  also writes the reservation's record);
* commit / release — one transaction: the wallet update and the reservation's record.

A refused condition is explained from the old item the refusal returns, so the common paths
cost exactly one round trip (docs/data-model.md lists every condition).
"""

from __future__ import annotations

from decimal import Decimal

from credit_meter.core import clock
from credit_meter.core.catalog import Catalog
from credit_meter.core.errors import (
    Conflict,
    FieldProblem,
    InvalidRequest,
    ReservationNotFound,
    SpendingLimitReached,
    no_wallet,
)
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.ids import ReservationId, member_tag, op_key
from credit_meter.core.money import ZERO
from credit_meter.core.wallets import Ended, Reservation
from credit_meter.metering import hold_records, pricing_modes
from credit_meter.metering.costs import Cost, Prices
from credit_meter.metering.pricing_modes import Guess, wallet_mode
from credit_meter.metering.refusals import mark_refusal, refusal
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import HOLD_RECORD
from credit_meter.storage.records import now_ms
from credit_meter.storage.store import Store, WriteRejected
from credit_meter.storage.wallet_record import Item

# A hold keeps a prefix of its request's digest: enough to tell a retry from another body,
# and it keeps the hot wallet item small.
HOLD_DIGEST_CHARS = 16
# A wallet with open holds is looked at by the sweeper at least this often, so no hold outlives
# its expires_at by much more than this plus the sweeper's schedule (docs/data-model.md).
SWEEP_REVISIT_SECONDS = 60


class Holds:
    """Reserve, commit and release (one conditional write each on the common path)."""

    def __init__(self, store: Store, cat: Catalog) -> None:
        self.store, self.catalog = store, cat

    def reserve(
        self,
        wallet_id: str,
        cost: Cost,
        request: Request,
        feature: str,
        member_id: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> Reservation:
        price = Prices(cost, self.catalog)
        price(None)  # checks the cost before anything else
        ttl = expires_in_seconds or self.catalog.default_hold_seconds
        if ttl > self.catalog.max_hold_seconds:
            raise InvalidRequest(
                [FieldProblem("expires_in_seconds", f"at most {self.catalog.max_hold_seconds}")]
            )
        key = op_key(wallet_id, "reserve", request.idempotency_key)
        expires_at = int(clock.now_ts()) + ttl
        tag = None if member_id is None else member_tag(member_id)

        def write(guess: Guess) -> None:
            credits = price(guess.mode)[0]
            terms = guess.terms(member_id, tag)
            digest = request.request_hash[:HOLD_DIGEST_CHARS]
            hold = wallet_record.new_hold(credits, expires_at, feature, digest, terms)
            # The sweeper's next look: kept if one is already due (it may be late by at most
            # SWEEP_REVISIT_SECONDS for a hold shorter than those already open).
            sweep_at = min(expires_at, int(clock.now_ts()) + SWEEP_REVISIT_SECONDS)
            update = wallet_record.reserve_update(
                wallet_id, key, hold, terms, self.catalog.max_open_holds, sweep_at
            )
            if request.idempotency_key is None:
                # The random key makes an SDK-level retry of this very request fail its
                # condition and come back below as a replay, never as a second hold.
                self.store.update(update)
                return
            budget_tag = tag if guess.budgeted else None
            record = hold_records.opened(
                wallet_id, key, request, credits, expires_at, budget_tag, guess.mode
            )
            self.store.transact(update, record)

        try:
            guess = pricing_modes.debit(wallet_id, key, tag, member_id, write)
        except WriteRejected as rejected:
            credits = price(wallet_mode(rejected.old[0] or {}, member_id))[0]
            try:
                return self._explain_reserve(wallet_id, key, credits, request, rejected, tag)
            except SpendingLimitReached as refused:
                mark_refusal(self.store, wallet_id, rejected.old[0], tag, refused)
                raise
        credits = price(guess.mode)[0]
        rid = ReservationId(key, credits, tag if guess.budgeted else None, guess.mode)
        return Reservation(str(rid), "held", credits, expires_at)

    def _explain_reserve(
        self,
        wallet_id: str,
        key: str,
        credits: Decimal,
        request: Request,
        rejected: WriteRejected,
        tag: str | None,
    ) -> Reservation:
        wallet = rejected.old[0]
        record = rejected.old[1] if len(rejected.old) > 1 else None
        hold = None if wallet is None else wallet_record.open_holds(wallet).get(key)
        first: Item
        if record is not None:  # this key was used before, maybe long ago: replay or refuse
            first, same = record, request.request_hash == record["rh"]
        elif hold is not None:  # the first request's hold is still open (digest prefix)
            digest = request.request_hash[:HOLD_DIGEST_CHARS]
            first, same = hold, digest == wallet_record.hold_digest(hold)
        elif wallet is None:
            raise no_wallet(wallet_id)
        elif len(wallet_record.open_holds(wallet)) >= self.catalog.max_open_holds:
            raise Conflict(
                f"the wallet has {self.catalog.max_open_holds} open reservations; "
                "commit or release some first",
                code="too-many-open-reservations",
            )
        else:
            raise refusal(credits, wallet, tag)
        if not same:
            raise key_reused()
        # A hold entry and its record name credits, expiry, tag and mode alike.
        held = wallet_record.hold_credits(first)
        tagged, mode = wallet_record.hold_budget_tag(first), wallet_record.hold_mode(first)
        rid = ReservationId(key, held, tagged, mode)
        return Reservation(str(rid), "held", held, wallet_record.hold_expires_at(first))

    def commit(self, wallet_id: str, reservation_id: str, cost: Cost, request: Request) -> Ended:
        rid = parse_rid(reservation_id)
        charged, lines = cost.itemise(self.catalog, rid.mode)
        if charged is None:
            charged = rid.credits
        return self._end(wallet_id, rid, charged, "committed", request, lines)

    def release(self, wallet_id: str, reservation_id: str, request: Request) -> Ended:
        return self._end(wallet_id, parse_rid(reservation_id), ZERO, "released", request)

    def _end(
        self,
        wallet_id: str,
        rid: ReservationId,
        charged: Decimal,
        status: str,
        request: Request,
        lines: list[str] | None = None,
    ) -> Ended:
        """Commit or release: the hold leaves the wallet and its record says how, atomically.

        Commit never fails for lack of credits (the work happened): charging more than was
        held takes the excess from what is available and may leave the balance negative.
        """
        held = rid.credits
        at = now_ms()
        post = wallet_record.posting(
            str(rid),
            "reservation",
            -charged,
            status,
            at,
            hold_key=rid.key,
            usage=lines,
            mode=rid.mode,
        )
        wallet_update = wallet_record.hold_end_update(
            wallet_id, rid.key, held, charged, post, rid.member_tag, rid.mode
        )
        record_update = hold_records.ended(
            wallet_id,
            rid.key,
            status,
            request.request_hash,
            held,
            charged,
            at,
            rid.member_tag,
            rid.mode,
        )
        try:
            self.store.transact(wallet_update, record_update)
        except WriteRejected:
            return self._explain_end(wallet_id, rid, status, request)
        return Ended(str(rid), status, charged, max(ZERO, held - charged))

    def _explain_end(
        self, wallet_id: str, rid: ReservationId, status: str, request: Request
    ) -> Ended:
        record = self.store.get(items.record_key(wallet_id, HOLD_RECORD, rid.key))
        if (
            record is None
            or record.get("st") == "held"
            or Decimal(record["c"]) != rid.credits
            or record.get("b") != rid.member_tag
            or record.get("p") != rid.mode
        ):
            wallet_record.read(self.store, wallet_id)  # 404 for the wallet first
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


def parse_rid(text: str) -> ReservationId:
    rid = ReservationId.parse(text)
    if rid is None:
        raise ReservationNotFound(f"reservation {text!r} does not exist")
    return rid
