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

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter.core import clock
from credit_meter.core.catalog import BYOK, BYPASS, Catalog, UsageLine, catalog
from credit_meter.core.errors import (
    Conflict,
    Contention,
    DomainError,
    FieldProblem,
    InsufficientCredits,
    InvalidRequest,
    MemberBudgetReached,
    ReservationNotFound,
    SpendingLimitReached,
)
from credit_meter.core.errors import no_wallet as _no_wallet
from credit_meter.core.idempotency import Request
from credit_meter.core.idempotency import key_reused as _key_reused
from credit_meter.core.ids import ReservationId, charge_id, member_tag, op_key
from credit_meter.core.money import ZERO, fmt
from credit_meter.core.usage import encode_lines
from credit_meter.core.wallets import Charge, Ended, Reservation, WalletView
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import CHARGE_RECORD, HOLD_RECORD
from credit_meter.storage.records import now_ms as _now_ms
from credit_meter.storage.records import record_ttl as _record_ttl
from credit_meter.storage.store import Put, Store, Update, WriteRejected

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

    def resolve(self, cat: Catalog, mode: str | None = None) -> Decimal | None:
        return self.itemise(cat, mode)[0]

    def itemise(
        self, cat: Catalog, mode: str | None = None
    ) -> tuple[Decimal | None, list[str] | None]:
        """The cost, and the priced usage lines as the posting carries them to the ledger
        (:func:`credit_meter.core.usage.encode_line`); no lines for a cost given in credits.
        ``mode`` (:meth:`Catalog.itemise`): under ``bypass`` nothing costs anything, credits
        given outright included; under ``byok`` credits given outright are charged as given
        (they do not say which part was AI tokens)."""
        if self.credits is not None:
            return (ZERO if mode == BYPASS else self.credits), None
        if self.usage is not None:
            lines = cat.itemise(list(self.usage), mode)
            return sum((x.cost for x in lines), ZERO), encode_lines(lines)
        return None, None


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


def _can_debit(
    amount: str, values: dict[str, Any], mode: str | None = None, credits: Decimal | None = None
) -> str:
    """The part of a debit's condition that protects the wallet: enough available (or overage
    allowed) and room under the spending limit (``lrem``, absent only on wallets older than
    limits). ``amount`` is the value name of the credits asked for. A debit that costs
    nothing because of its mode (BYOK tokens, bypass) is never refused for lack of credits
    or room: nothing is taken."""
    if mode is not None and credits == ZERO:
        return "attribute_exists(pk)"
    values[":overage"] = True
    return (
        f"(avail >= {amount} OR ovr = :overage) "
        f"AND (lrem >= {amount} OR attribute_not_exists(lrem))"
    )


def _budget_debit(
    tag: str | None,
    budgeted: bool,
    names: dict[str, str],
    amount: str = ":c",
    free: bool = False,
) -> tuple[str, str]:
    """The SET clause and condition a member's debit adds: with a budget, its room goes down
    in the same write and must suffice (``mb.<tag>.c`` absent: no cap, usage still counted);
    without one, the condition makes sure there is still none (else the write is refused and
    made again the other way). ``free``: the debit costs nothing because of its mode (BYOK
    tokens, bypass): the room is not tested (an overspent budget refuses nothing free)."""
    if tag is None:
        return "", ""
    names["#m"] = tag
    if not budgeted:
        return "", " AND attribute_not_exists(mb.#m)"
    if free:
        return f", mb.#m.r = mb.#m.r - {amount}", " AND attribute_exists(mb.#m)"
    return (
        f", mb.#m.r = mb.#m.r - {amount}",
        f" AND attribute_exists(mb.#m) AND (attribute_not_exists(mb.#m.c) OR mb.#m.r >= {amount})",
    )


class _Prices:
    """A cost priced in each mode a debit tries (usually one), each once."""

    def __init__(self, cost: Cost, cat: Catalog) -> None:
        self._cost, self._catalog = cost, cat
        self._priced: dict[str | None, tuple[Decimal | None, list[str] | None]] = {}

    def __call__(self, mode: str | None) -> tuple[Decimal, list[str] | None]:
        if mode not in self._priced:
            self._priced[mode] = self._cost.itemise(self._catalog, mode)
        amount, lines = self._priced[mode]
        if amount is None:
            raise InvalidRequest([FieldProblem("credits", "give credits or usage")])
        return amount, lines


@dataclass(frozen=True, slots=True)
class _Guess:
    """What a debit's write assumes about its wallet without reading it: whether the member
    has a budget, and how the debit is priced (``mode``: None for credits, ``byok`` when the
    member's own provider key pays the AI tokens, ``bypass`` for a self-hosted wallet). The
    write's condition checks both; a wrong guess is refused and made again the right way."""

    budgeted: bool = False
    mode: str | None = None


def wallet_mode(wallet: dict[str, Any], member_id: str | None) -> str | None:
    """How a wallet prices a member's debits: bypass (``bp``) for everyone, BYOK for the
    members whose own key is active (``ky``, kept by :mod:`credit_meter.byok.keys`), else
    credits."""
    if wallet.get("bp"):
        return BYPASS
    if member_id is not None and member_id in wallet.get("ky", ()):
        return BYOK
    return None


def _mode_condition(mode: str | None, member_id: str | None, values: dict[str, Any]) -> str:
    """The part of a debit's condition that checks its pricing mode is still the wallet's."""
    if mode == BYPASS:
        return " AND attribute_exists(bp)"
    clause = " AND attribute_not_exists(bp)"
    if member_id is None:
        return clause
    values[":mid"] = member_id
    if mode == BYOK:
        return f"{clause} AND contains(ky, :mid)"
    return f"{clause} AND NOT contains(ky, :mid)"


def _actual(
    rejected: WriteRejected, key: str, tag: str | None, member_id: str | None
) -> _Guess | None:
    """What a refused debit should have assumed, from the old wallet the refusal returned;
    None when the refusal is not about a guess (no wallet, or a replay: the record answers)."""
    wallet = rejected.old[0]
    if wallet is None or any(old is not None for old in rejected.old[1:]):
        return None  # no wallet, or a replay: the record answers
    if key in wallet.get("hd", {}):
        return None  # a replay of an open hold
    budgeted = tag is not None and tag in wallet.get("mb", {})
    return _Guess(budgeted, wallet_mode(wallet, member_id))


def _keep_tag(tag: str | None, values: dict[str, Any], mode: str | None = None) -> str:
    """The SET clause that keeps a hold's member tag (budgeted) and pricing mode on its ended
    record, so a later replay needs the same reservation id; adds their values to ``values``."""
    clause = ""
    if tag is not None:
        values[":tag"] = tag
        clause += ", b = :tag"
    if mode is not None:
        values[":mode"] = mode
        clause += ", p = :mode"
    return clause


class _BudgetHints:
    """Which (wallet, member) pairs have a budget, as far as this process has seen. Only saves
    a round trip: a wrong guess is refused by the write's condition and corrected."""

    _MAX = 50_000

    def __init__(self) -> None:
        self._known: set[tuple[str, str]] = set()

    def known(self, wallet_id: str, tag: str) -> bool:
        return (wallet_id, tag) in self._known

    def learn(self, wallet_id: str, tag: str, budgeted: bool) -> None:
        if not budgeted:
            self._known.discard((wallet_id, tag))
            return
        if len(self._known) >= self._MAX:
            self._known.clear()
        self._known.add((wallet_id, tag))


budget_hints = _BudgetHints()


class _ModeHints:
    """Which (wallet, member) pairs are priced in another mode than credits (BYOK, bypass), as
    far as this process has seen. Like :class:`_BudgetHints`, only saves a round trip."""

    _MAX = 50_000

    def __init__(self) -> None:
        self._modes: dict[tuple[str, str | None], str] = {}

    def guess(self, wallet_id: str, member_id: str | None) -> str | None:
        return self._modes.get((wallet_id, member_id))

    def learn(self, wallet_id: str, member_id: str | None, mode: str | None) -> None:
        if mode is None:
            self._modes.pop((wallet_id, member_id), None)
            return
        if len(self._modes) >= self._MAX:
            self._modes.clear()
        self._modes[(wallet_id, member_id)] = mode


mode_hints = _ModeHints()


def _refusal(credits: Decimal, wallet: dict[str, Any], tag: str | None) -> DomainError:
    """Why a debit of ``credits`` was refused, from the wallet as the refusal returned it.
    Past both the spending limit and the member's budget, the tighter one is named (a retry
    for what it says is left then succeeds)."""
    passed: list[SpendingLimitReached] = []
    room = wallet.get("lrem")
    if room is not None and Decimal(room) < credits:
        limit = Decimal(wallet.get("lim", wallet_record.NO_LIMIT_ROOM))
        left = max(ZERO, Decimal(room))
        passed.append(
            SpendingLimitReached(
                f"{fmt(credits)} credits requested, {fmt(left)} left of this period's "
                f"spending limit of {fmt(limit)} (open reservations count as spent)",
                limit=limit,
                remaining=left,
            )
        )
    budget = wallet.get("mb", {}).get(tag) if tag is not None else None
    if budget is not None and "c" in budget and Decimal(budget["r"]) < credits:
        left = max(ZERO, Decimal(budget["r"]))
        passed.append(
            MemberBudgetReached(
                f"{fmt(credits)} credits requested, {fmt(left)} left of the budget of "
                f"{fmt(Decimal(budget['c']))} for member {budget['n']!r} this period",
                limit=Decimal(budget["c"]),
                remaining=left,
            )
        )
    if passed:
        return min(passed, key=lambda refusal: refusal.remaining)
    return _insufficient(credits, wallet)


class Metering:
    """The metering service (the hot path, hold expiry, reads). Holds a :class:`Store`; cheap
    to make, one per invocation is fine. :mod:`credit_meter.billing` has plans, periods and grants
    beside it."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def get_wallet(self, wallet_id: str) -> WalletView:
        return wallet_record.view(self._wallet_item(wallet_id))

    def _wallet_item(self, wallet_id: str) -> dict[str, Any]:
        item = self.store.get(wallet_record.key(wallet_id))
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
        price = _Prices(cost, self.catalog)
        price(None)  # checks the cost before anything else
        ttl = expires_in_seconds or self.catalog.default_hold_seconds
        if ttl > self.catalog.max_hold_seconds:
            raise InvalidRequest(
                [FieldProblem("expires_in_seconds", f"at most {self.catalog.max_hold_seconds}")]
            )
        key = op_key(wallet_id, "reserve", request.idempotency_key)
        expires_at = int(clock.now_ts()) + ttl
        tag = None if member_id is None else member_tag(member_id)

        def write(guess: _Guess) -> None:
            credits = price(guess.mode)[0]
            update, record = self._reserve_writes(
                wallet_id, key, credits, expires_at, feature, member_id, tag, guess, request
            )
            if record is None:
                # The random key makes an SDK-level retry of this very request fail its
                # condition and come back below as a replay, never as a second hold.
                self.store.update(update)
            else:
                self.store.transact(update, record)

        try:
            guess = self._debit(wallet_id, key, tag, member_id, write)
        except WriteRejected as rejected:
            credits = price(wallet_mode(rejected.old[0] or {}, member_id))[0]
            try:
                return self._explain_reserve(wallet_id, key, credits, request, rejected, tag)
            except SpendingLimitReached as refused:
                self._mark_refusal(wallet_id, rejected.old[0], tag, refused)
                raise
        credits = price(guess.mode)[0]
        rid = ReservationId(key, credits, tag if guess.budgeted else None, guess.mode)
        return Reservation(str(rid), "held", credits, expires_at)

    @staticmethod
    def _debit(
        wallet_id: str,
        key: str,
        tag: str | None,
        member_id: str | None,
        write: Callable[[_Guess], None],
    ) -> _Guess:
        """Make a debit's write guessing, from what this process has seen, whether the member
        (``tag``) has a budget and how the wallet prices the debit; returns the guess the write
        succeeded with. A refusal whose old item shows the guess was wrong is made again the
        right way (a budget, a BYOK key or bypass mode set or first seen meanwhile); any
        other refusal is raised, as is a second one."""
        guess = _Guess(
            tag is not None and budget_hints.known(wallet_id, tag),
            mode_hints.guess(wallet_id, member_id),
        )
        try:
            write(guess)
            return guess
        except WriteRejected as rejected:
            actual = _actual(rejected, key, tag, member_id)
            if actual is None or actual == guess:
                raise
        if tag is not None:
            budget_hints.learn(wallet_id, tag, actual.budgeted)
        mode_hints.learn(wallet_id, member_id, actual.mode)
        write(actual)
        return actual

    def _reserve_writes(
        self,
        wallet_id: str,
        key: str,
        credits: Decimal,
        expires_at: int,
        feature: str,
        member_id: str | None,
        tag: str | None,
        guess: _Guess,
        request: Request,
    ) -> tuple[Update, Put | None]:
        """The hold's write: one UpdateItem, or with an Idempotency-Key a transaction that also
        writes its record. Availability, the spending limit and the member's budget are tested
        in its condition, so concurrent reserves cannot pass any of them."""
        hold: dict[str, Any] = {
            "c": credits,
            "x": expires_at,
            "f": feature,
            "h": request.request_hash[:HOLD_DIGEST_CHARS],
        }
        if member_id is not None:
            hold["m"] = member_id
        if guess.mode is not None:
            hold["p"] = guess.mode
        # The sweeper's next look: kept if one is already due (it may be late by at most
        # SWEEP_REVISIT_SECONDS for a hold shorter than those already open).
        sweep_at = min(expires_at, int(clock.now_ts()) + SWEEP_REVISIT_SECONDS)
        names = {"#k": key}
        values: dict[str, Any] = {
            ":c": credits,
            ":max_open": self.catalog.max_open_holds,
            ":sweep": sweep_at,
            ":shard": wallet_record.sweep_shard(wallet_id),
            ":unl": wallet_record.NO_LIMIT_ROOM,
        }
        free = guess.mode is not None and credits == ZERO
        budget_set, budget_condition = _budget_debit(tag, guess.budgeted, names, free=free)
        if guess.budgeted:
            hold["b"] = tag
        values[":hold"] = hold
        mode_condition = _mode_condition(guess.mode, member_id, values)
        update = Update(
            key=wallet_record.key(wallet_id),
            expression=(
                "SET hd.#k = :hold, held = held + :c, avail = avail - :c, "
                f"lrem = if_not_exists(lrem, :unl) - :c{budget_set}, "
                "sweep_at = if_not_exists(sweep_at, :sweep), "
                "sweep_shard = if_not_exists(sweep_shard, :shard) REMOVE posts"
            ),
            condition=(
                f"attribute_exists(pk) AND {_can_debit(':c', values, guess.mode, credits)}"
                f"{budget_condition}{mode_condition} "
                "AND attribute_not_exists(hd.#k) AND size(hd) < :max_open"
            ),
            names=names,
            values=values,
        )
        if request.idempotency_key is None:
            return update, None
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
        if guess.budgeted:
            record["b"] = tag
        if guess.mode is not None:
            record["p"] = guess.mode
        return update, Put(record)

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
            raise _refusal(credits, wallet, tag)
        if not same:
            raise _key_reused()
        held = Decimal(first["c"])
        rid = ReservationId(key, held, first.get("b"), first.get("p"))
        return Reservation(str(rid), "held", held, int(first["x"]))

    def commit(self, wallet_id: str, reservation_id: str, cost: Cost, request: Request) -> Ended:
        rid = self._parse_rid(reservation_id)
        charged, lines = cost.itemise(self.catalog, rid.mode)
        if charged is None:
            charged = rid.credits
        return self._end(wallet_id, rid, charged, "committed", request, lines)

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
        lines: list[str] | None = None,
    ) -> Ended:
        """Commit or release: the hold leaves the wallet and its record says how, atomically.

        Commit never fails for lack of credits (the work happened): charging more than was
        held takes the excess from what is available and may leave the balance negative.
        """
        held = rid.credits
        released = max(ZERO, held - charged)
        at = _now_ms()
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
        names = {"#k": rid.key}
        values: dict[str, Any] = {
            ":h": held,
            ":r": held - charged,
            ":a": charged,
            ":one": 1,
            ":posts": [post],
            ":unl": wallet_record.NO_LIMIT_ROOM,
        }
        if rid.member_tag is None:
            budget_set, condition = "", "hd.#k.c = :h AND attribute_not_exists(hd.#k.b)"
        else:  # the member's room gets back what was held and not charged
            names["#m"] = rid.member_tag
            values[":tag"] = rid.member_tag
            budget_set = ", mb.#m.r = mb.#m.r + :r, mb.#m.u = mb.#m.u + :a"
            condition = "hd.#k.c = :h AND hd.#k.b = :tag"
        if rid.mode is None:  # the id's mode must be the hold's: a forged mark is refused
            condition += " AND attribute_not_exists(hd.#k.p)"
        else:
            values[":mode"] = rid.mode
            condition += " AND hd.#k.p = :mode"
        wallet_update = Update(
            key=wallet_record.key(wallet_id),
            expression=(
                "REMOVE hd.#k SET held = held - :h, avail = avail + :r, bal = bal - :a, "
                "drawn = drawn + :a, used = used + :a, seq = seq + :one, posts = :posts, "
                f"lrem = if_not_exists(lrem, :unl) + :r{budget_set}"
            ),
            condition=condition,
            names=names,
            values=values,
        )
        record_values: dict[str, Any] = {
            ":kind": "reservation",
            ":st": status,
            ":eh": request.request_hash,
            ":a": charged,
            ":rel": released,
            ":h": held,
            ":at": at,
            ":held": "held",
            ":ttl": _record_ttl(),
        }
        tagged = _keep_tag(rid.member_tag, record_values, rid.mode)
        record_update = Update(
            key=items.record_key(wallet_id, HOLD_RECORD, rid.key),
            expression=(
                "SET kind = :kind, st = :st, eh = :eh, charged = :a, released = :rel, "
                f"c = :h, ended = :at, #ttl = :ttl{tagged}"
            ),
            condition="attribute_not_exists(pk) OR st = :held",
            names={"#ttl": "ttl"},
            values=record_values,
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
        if (
            record is None
            or record.get("st") == "held"
            or Decimal(record["c"]) != rid.credits
            or record.get("b") != rid.member_tag
            or record.get("p") != rid.mode
        ):
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
        price = _Prices(cost, self.catalog)
        price(None)  # checks the cost before anything else
        key = op_key(wallet_id, "charge", request.idempotency_key)
        cid = charge_id(key)
        tag = None if member_id is None else member_tag(member_id)
        at = _now_ms()

        def write(guess: _Guess) -> None:
            amount, lines = price(guess.mode)
            post = wallet_record.posting(
                cid,
                "charge",
                -amount,
                "posted",
                at,
                feature=feature,
                member_id=member_id,
                usage=lines,
                mode=guess.mode,
            )
            record = {
                **items.record_key(wallet_id, CHARGE_RECORD, key),
                "kind": "charge",
                "rh": request.request_hash,
                "charged": amount,
                "at": at,
                "ttl": _record_ttl(),
            }
            names: dict[str, str] = {}
            free = guess.mode is not None and amount == ZERO
            budget_set, budget_condition = _budget_debit(
                tag, guess.budgeted, names, ":a", free=free
            )
            if guess.budgeted:
                budget_set += ", mb.#m.u = mb.#m.u + :a"
            values: dict[str, Any] = {
                ":a": amount,
                ":one": 1,
                ":posts": [post],
                ":unl": wallet_record.NO_LIMIT_ROOM,
            }
            mode_condition = _mode_condition(guess.mode, member_id, values)
            wallet_update = Update(
                key=wallet_record.key(wallet_id),
                expression=(
                    "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, "
                    "used = used + :a, seq = seq + :one, posts = :posts, "
                    f"lrem = if_not_exists(lrem, :unl) - :a{budget_set}"
                ),
                condition=(
                    f"attribute_exists(pk) AND {_can_debit(':a', values, guess.mode, amount)}"
                    f"{budget_condition}{mode_condition}"
                ),
                names=names,
                values=values,
            )
            self.store.transact(wallet_update, Put(record))

        try:
            guess = self._debit(wallet_id, key, tag, member_id, write)
        except WriteRejected as rejected:
            wallet, first = rejected.old
            if first is not None:
                if first["rh"] != request.request_hash:
                    raise _key_reused() from None
                return Charge(cid, Decimal(first["charged"]), replayed=True)
            if wallet is None:
                raise _no_wallet(wallet_id) from None
            amount = price(wallet_mode(wallet, member_id))[0]
            refusal = _refusal(amount, wallet, tag)
            if isinstance(refusal, SpendingLimitReached):
                self._mark_refusal(wallet_id, wallet, tag, refusal)
            raise refusal from None
        return Charge(cid, price(guess.mode)[0])

    def _mark_refusal(
        self,
        wallet_id: str,
        wallet: dict[str, Any] | None,
        tag: str | None,
        refused: SpendingLimitReached,
    ) -> None:
        """Note, once per period, that the spending limit (or the member's budget) refused a
        debit: the refusal itself writes nothing, and the alerts function, which reads the
        stream, fires ``limit.reached`` on this write. Only refusals that come before the
        mark is visible pay for it (one conditional write)."""
        if wallet is None:
            return
        period = Decimal(wallet["ps"])
        if isinstance(refused, MemberBudgetReached):
            if tag is None or Decimal(wallet["mb"][tag].get("h", -1)) == period:
                return
            expression = "SET mb.#m.h = :ps"
            condition = (
                "ps = :ps AND attribute_exists(mb.#m) "
                "AND (attribute_not_exists(mb.#m.h) OR mb.#m.h <> :ps)"
            )
            names = {"#m": tag}
        else:
            if Decimal(wallet.get("lhit", -1)) == period:
                return
            expression = "SET lhit = :ps"
            condition = "ps = :ps AND (attribute_not_exists(lhit) OR lhit <> :ps)"
            names = {}
        with contextlib.suppress(WriteRejected):  # marked already, or a new period began
            self.store.update(
                Update(
                    wallet_record.key(wallet_id),
                    expression,
                    condition,
                    names=names,
                    values={":ps": period},
                )
            )

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
        for shard in range(wallet_record.SWEEP_SHARDS):
            due = self.store.query_index_upto(
                wallet_record.SWEEP_INDEX, "sweep_shard", f"S#{shard:02d}", "sweep_at", now
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
            wallet = self.store.get(wallet_record.key(wallet_id))
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
                    key=wallet_record.key(wallet_id),
                    expression=schedule,
                    condition=" AND ".join(["attribute_exists(pk)", *conditions]),
                    values=values,
                )
            )
            return
        released = sum((Decimal(h["c"]) for _, h in batch), ZERO)
        at = _now_ms()
        posts = [
            wallet_record.posting(
                str(ReservationId(key, Decimal(hold["c"]), hold.get("b"), hold.get("p"))),
                "reservation",
                ZERO,
                "expired",
                at,
                hold_key=key,
                mode=hold.get("p"),
            )
            for key, hold in batch
        ]
        removes = ", ".join(f"hd.#k{i}" for i in range(len(batch)))
        set_part = schedule.removeprefix("SET ") + ", " if remaining else ""
        remove_sweep = "" if remaining else ", sweep_at"
        values.update(
            {":r": released, ":n": len(batch), ":posts": posts, ":unl": wallet_record.NO_LIMIT_ROOM}
        )
        # Holds counted against a member's budget give the member's room back too.
        by_member: dict[str, Decimal] = {}
        for i, (_, hold) in enumerate(batch):
            if "b" in hold:
                by_member[hold["b"]] = by_member.get(hold["b"], ZERO) + Decimal(hold["c"])
                conditions.append(f"hd.#k{i}.b = :b{i}")
                values[f":b{i}"] = hold["b"]
        budget_sets = ""
        for j, (tag, credits) in enumerate(by_member.items()):
            names[f"#m{j}"] = tag
            values[f":m{j}"] = credits
            budget_sets += f", mb.#m{j}.r = mb.#m{j}.r + :m{j}"
        wallet_update = Update(
            key=wallet_record.key(wallet_id),
            expression=(
                f"SET {set_part}held = held - :r, avail = avail + :r, seq = seq + :n, "
                f"posts = :posts, lrem = if_not_exists(lrem, :unl) + :r{budget_sets} "
                f"REMOVE {removes}{remove_sweep}"
            ),
            condition=" AND ".join(conditions),
            names=names,
            values=values,
        )
        records = []
        for key, hold in batch:
            record_values: dict[str, Any] = {
                ":kind": "reservation",
                ":st": "expired",
                ":eh": "",
                ":zero": ZERO,
                ":c": Decimal(hold["c"]),
                ":at": at,
                ":held": "held",
                ":ttl": _record_ttl(),
            }
            tagged = _keep_tag(hold.get("b"), record_values, hold.get("p"))
            records.append(
                Update(
                    key=items.record_key(wallet_id, HOLD_RECORD, key),
                    expression=(
                        "SET kind = :kind, st = :st, eh = :eh, charged = :zero, released = :c, "
                        f"c = :c, ended = :at, #ttl = :ttl{tagged}"
                    ),
                    condition="attribute_not_exists(pk) OR st = :held",
                    names={"#ttl": "ttl"},
                    values=record_values,
                )
            )
        self.store.transact(wallet_update, *records)
