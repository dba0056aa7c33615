"""The metering operations: one call per API route, no knowledge of API Gateway.

Each write is a single conditional DynamoDB request (a transaction where an operation record
must commit with the wallet update); a refused condition is explained from the old item the
refusal returns, so the common paths cost exactly one round trip:

* reserve — one UpdateItem on the wallet (with an Idempotency-Key, a two-item transaction that
  also writes the reservation's record);
* commit / release — one transaction: the wallet update and the reservation's record;
* charge — one transaction: the wallet update and the charge's record;
* grant — a read, then a transaction guarded by the bucket-list version (grants are rare).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from credit_meter import clock, domain
from credit_meter.catalog import Catalog, UsageLine, catalog
from credit_meter.domain import Bucket
from credit_meter.errors import (
    Conflict,
    Contention,
    FieldProblem,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    ReservationNotFound,
    WalletNotFound,
)
from credit_meter.ids import ReservationId, charge_id, grant_id, op_key
from credit_meter.money import ZERO, fmt
from credit_meter.store import (
    CHARGE_RECORD,
    ENTRY_PREFIX,
    GRANT_RECORD,
    HOLD_RECORD,
    RECORD_PREFIX,
    WALLET_SK,
    Put,
    Store,
    Update,
    WriteRejected,
    wallet_pk,
)

_GRANT_ATTEMPTS = 10
# Reservation and charge records answer retries for this long, then TTL removes them (the
# ledger keeps the history). Grant records stay: they describe the grant.
RECORD_TTL_SECONDS = 30 * 86400
MAX_GRANT_SECONDS = 100 * 365 * 86400


# -- inputs and results -----------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Request:
    """What every write carries for idempotency: the client's key and the body's hash."""

    request_hash: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    status: str
    credits: Decimal
    expires_at: int


@dataclass(frozen=True, slots=True)
class Ended:
    reservation_id: str
    status: str
    charged: Decimal
    released: Decimal


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    charged: Decimal


@dataclass(frozen=True, slots=True)
class Granted:
    grant_id: str
    credits: Decimal
    source: str
    priority: int
    expires_at: int | None


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
    buckets: list[domain.BucketView]


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


# -- stored shapes ----------------------------------------------------------------------------


def _bucket_item(b: Bucket) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": b.id,
        "src": b.source,
        "amt": b.amount,
        "pri": b.priority,
        "at": b.created_at,
    }
    if b.expires_at is not None:
        item["exp"] = b.expires_at
    return item


def _bucket(item: dict[str, Any]) -> Bucket:
    return Bucket(
        id=item["id"],
        source=item["src"],
        amount=Decimal(item["amt"]),
        priority=int(item["pri"]),
        created_at=int(item["at"]),
        expires_at=int(item["exp"]) if "exp" in item else None,
    )


def _wallet_key(wallet_id: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": WALLET_SK}


def _record_key(wallet_id: str, kind: str, key: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": f"{RECORD_PREFIX}{kind}{key}"}


def _now_ms() -> int:
    return int(clock.now_ts() * 1000)


def _record_ttl() -> int:
    return int(clock.now_ts()) + RECORD_TTL_SECONDS


class Metering:
    """The service. Holds a :class:`Store`; cheap to make, one per invocation is fine."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    # -- wallets ---------------------------------------------------------------------------

    def put_wallet(
        self, wallet_id: str, plan: str, allowance: Decimal | None = None
    ) -> tuple[bool, WalletView]:
        """Create the wallet with its plan's allowance (True) or change its plan (False)."""
        allowance = self._allowance(plan, allowance)
        now = clock.now()
        start, end = domain.first_period(now)
        at = _now_ms()
        buckets: list[Bucket] = []
        posts: list[dict[str, Any]] = []
        if allowance > 0:
            bucket_id = f"monthly-{start:%Y%m%d}"
            buckets.append(
                Bucket(
                    id=bucket_id,
                    source="monthly",
                    amount=allowance,
                    priority=self.catalog.sources["monthly"].priority,
                    created_at=at,
                    expires_at=int(end.timestamp()),
                )
            )
            posts.append(
                {
                    "id": grant_id(bucket_id),
                    "ty": "grant",
                    "d": allowance,
                    "st": "posted",
                    "at": at,
                    "src": "monthly",
                }
            )
        item = {
            **_wallet_key(wallet_id),
            "kind": "wallet",
            "wallet_id": wallet_id,
            "plan": plan,
            "allow": allowance,
            "ps": int(start.timestamp()),
            "pe": int(end.timestamp()),
            "bal": allowance,
            "held": ZERO,
            "avail": allowance,
            "drawn": ZERO,
            "used": ZERO,
            "seq": len(posts),
            "bver": 1,
            "bk": [_bucket_item(b) for b in buckets],
            "hd": {},
            "posts": posts,
            "created": at,
        }
        try:
            self.store.put_new(Put(item))
            return True, self._view(item)
        except WriteRejected:
            pass
        # It exists: change the plan. The new allowance applies from the next period.
        try:
            self.store.update(
                Update(
                    key=_wallet_key(wallet_id),
                    expression="SET #plan = :plan, allow_next = :allow REMOVE posts",
                    condition="attribute_exists(pk)",
                    names={"#plan": "plan"},
                    values={":plan": plan, ":allow": allowance},
                )
            )
        except WriteRejected as rejected:  # deleted in between: not something we do
            raise WalletNotFound(f"wallet {wallet_id!r} does not exist") from rejected
        return False, self.get_wallet(wallet_id)

    def _allowance(self, plan: str, allowance: Decimal | None) -> Decimal:
        if plan not in self.catalog.plans:
            raise InvalidRequest([FieldProblem("plan", f"unknown plan {plan!r}")])
        default = self.catalog.plans[plan]
        if default is None:
            if allowance is None:
                raise InvalidRequest(
                    [FieldProblem("allowance", f"required for the custom plan {plan!r}")]
                )
            return allowance
        if allowance is not None:
            raise InvalidRequest(
                [FieldProblem("allowance", f"plan {plan!r} has a fixed allowance")]
            )
        return default

    def get_wallet(self, wallet_id: str) -> WalletView:
        item = self.store.get(wallet_pk(wallet_id), WALLET_SK)
        if item is None:
            raise WalletNotFound(f"wallet {wallet_id!r} does not exist")
        return self._view(item)

    @staticmethod
    def _view(item: dict[str, Any]) -> WalletView:
        buckets = [_bucket(b) for b in item.get("bk", [])]
        return WalletView(
            wallet_id=item["wallet_id"],
            plan=item["plan"],
            period_start=int(item["ps"]),
            period_end=int(item["pe"]),
            balance=Decimal(item["bal"]),
            held=Decimal(item["held"]),
            available=Decimal(item["avail"]),
            allowance=Decimal(item["allow"]),
            used=Decimal(item["used"]),
            buckets=domain.remaining(buckets, Decimal(item["drawn"])),
        )

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
        key = op_key(wallet_id, "reserve", request.idempotency_key)
        rid = str(ReservationId(key, credits))
        ttl = expires_in_seconds or self.catalog.default_hold_seconds
        if ttl > self.catalog.max_hold_seconds:
            raise InvalidRequest(
                [FieldProblem("expires_in_seconds", f"at most {self.catalog.max_hold_seconds}")]
            )
        expires_at = int(clock.now_ts()) + ttl
        hold: dict[str, Any] = {
            "c": credits,
            "x": expires_at,
            "f": feature,
            "h": request.request_hash,
            "at": _now_ms(),
        }
        if member_id is not None:
            hold["m"] = member_id
        update = Update(
            key=_wallet_key(wallet_id),
            expression="SET hd.#k = :hold, held = held + :c, avail = avail - :c REMOVE posts",
            condition="attribute_exists(pk) AND avail >= :c AND attribute_not_exists(hd.#k)",
            names={"#k": key},
            values={":hold": hold, ":c": credits},
        )
        result = Reservation(rid, "held", credits, expires_at)
        try:
            if request.idempotency_key is None:
                # The random key makes an SDK-level retry of this very request fail its
                # condition and come back below as a replay, never as a second hold.
                self.store.update(update)
            else:
                # The record outlives the hold, so a retry after commit still finds it.
                record = {
                    **_record_key(wallet_id, HOLD_RECORD, key),
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
        return result

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
        if record is not None:  # this key was used before: replay or refuse
            if record["rh"] != request.request_hash:
                raise IdempotencyConflict("Idempotency-Key was used with another request body")
            return Reservation(
                str(ReservationId(key, Decimal(record["c"]))),
                "held",
                Decimal(record["c"]),
                int(record["x"]),
            )
        if wallet is None:
            raise WalletNotFound(f"wallet {wallet_id!r} does not exist")
        hold = wallet.get("hd", {}).get(key)
        if hold is not None:
            if hold["h"] != request.request_hash:
                raise IdempotencyConflict("Idempotency-Key was used with another request body")
            return Reservation(
                str(ReservationId(key, Decimal(hold["c"]))),
                "held",
                Decimal(hold["c"]),
                int(hold["x"]),
            )
        raise InsufficientCredits(
            f"{fmt(credits)} credits requested, {fmt(Decimal(wallet['avail']))} available",
            available=Decimal(wallet["avail"]),
            requested=credits,
        )

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
        """Commit or release: the hold leaves the wallet and its record says how, atomically."""
        held = rid.credits
        released = max(ZERO, held - charged)
        at = _now_ms()
        posting = {
            "id": str(rid),
            "ty": "reservation",
            "d": -charged,
            "st": status,
            "at": at,
            "k": rid.key,
        }
        wallet_update = Update(
            key=_wallet_key(wallet_id),
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
                ":posts": [posting],
            },
        )
        record_update = Update(
            key=_record_key(wallet_id, HOLD_RECORD, rid.key),
            expression=(
                "SET kind = :kind, st = :st, eh = :eh, charged = :a, released = :rel, "
                "c = :h, ended = :at, #ttl = :ttl"
            ),
            names={"#ttl": "ttl"},
            condition="attribute_not_exists(pk) OR st = :held",
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
        record = self.store.get(wallet_pk(wallet_id), f"{RECORD_PREFIX}{HOLD_RECORD}{rid.key}")
        if record is None or record.get("st") == "held" or Decimal(record["c"]) != rid.credits:
            if self.store.get(wallet_pk(wallet_id), WALLET_SK) is None:
                raise WalletNotFound(f"wallet {wallet_id!r} does not exist")
            raise ReservationNotFound(f"reservation {rid} does not exist")
        ended = record["st"]
        if ended != status:
            raise Conflict(f"reservation {rid} was already {ended}", code=f"reservation-{ended}")
        if record["eh"] != request.request_hash:
            raise Conflict(
                f"reservation {rid} was already {ended} with another body",
                code=f"reservation-{ended}",
            )
        return Ended(str(rid), ended, Decimal(record["charged"]), Decimal(record["released"]))

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
        posting: dict[str, Any] = {
            "id": cid,
            "ty": "charge",
            "d": -amount,
            "st": "posted",
            "at": at,
            "f": feature,
        }
        if member_id is not None:
            posting["m"] = member_id
        wallet_update = Update(
            key=_wallet_key(wallet_id),
            expression=(
                "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, used = used + :a, "
                "seq = seq + :one, posts = :posts"
            ),
            condition="attribute_exists(pk) AND avail >= :a",
            values={":a": amount, ":one": 1, ":posts": [posting]},
        )
        record = {
            **_record_key(wallet_id, CHARGE_RECORD, key),
            "kind": "charge",
            "rh": request.request_hash,
            "charged": amount,
            "at": at,
            "ttl": _record_ttl(),
        }
        try:
            self.store.transact(wallet_update, Put(record))
        except WriteRejected as rejected:
            old_record = rejected.old[1]
            if old_record is not None:
                if old_record["rh"] != request.request_hash:
                    raise IdempotencyConflict(
                        "Idempotency-Key was used with another request body"
                    ) from None
                return Charge(cid, Decimal(old_record["charged"]))
            wallet = rejected.old[0]
            if wallet is None:
                raise WalletNotFound(f"wallet {wallet_id!r} does not exist") from None
            raise InsufficientCredits(
                f"{fmt(amount)} credits requested, {fmt(Decimal(wallet['avail']))} available",
                available=Decimal(wallet["avail"]),
                requested=amount,
            ) from None
        return Charge(cid, amount)

    def quote(self, wallet_id: str, usage: list[UsageLine]) -> Decimal:
        credits = self.catalog.price(usage)
        if self.store.get(wallet_pk(wallet_id), WALLET_SK) is None:
            raise WalletNotFound(f"wallet {wallet_id!r} does not exist")
        return credits

    def grant(
        self,
        wallet_id: str,
        credits: Decimal,
        source: str,
        request: Request,
        expires_at: datetime | None = None,
        priority: int | None = None,
    ) -> Granted:
        if source not in self.catalog.sources:
            raise InvalidRequest([FieldProblem("source", f"unknown source {source!r}")])
        key = op_key(wallet_id, "grant", request.idempotency_key)
        gid = grant_id(key)
        record_key = _record_key(wallet_id, GRANT_RECORD, key)
        if expires_at is not None and not (
            clock.now_ts() < expires_at.timestamp() <= clock.now_ts() + MAX_GRANT_SECONDS
        ):
            # A retry of a grant made before its credits expired still gets its first result.
            first = self.store.get(record_key["pk"], record_key["sk"])
            if first is not None:
                return self._replay_grant(gid, first, request)
            raise InvalidRequest(
                [FieldProblem("expires_at", "must be in the future and within 100 years")]
            )
        prio = self.catalog.sources[source].priority if priority is None else priority
        expires = None if expires_at is None else int(expires_at.timestamp())
        result = Granted(gid, credits, source, prio, expires)
        for _ in range(_GRANT_ATTEMPTS):
            wallet = self.store.get(wallet_pk(wallet_id), WALLET_SK)
            if wallet is None:
                raise WalletNotFound(f"wallet {wallet_id!r} does not exist")
            at = _now_ms()
            bucket = Bucket(gid, source, credits, prio, at, expires)
            rebased = domain.add_bucket(
                [_bucket(b) for b in wallet["bk"]], Decimal(wallet["drawn"]), bucket, self.catalog
            )
            posting = {
                "id": gid,
                "ty": "grant",
                "d": credits,
                "st": "posted",
                "at": at,
                "src": source,
            }
            wallet_update = Update(
                key=_wallet_key(wallet_id),
                expression=(
                    "SET bk = :bk, bver = bver + :one, drawn = drawn + :dd, bal = bal + :g, "
                    "avail = avail + :g, seq = seq + :one, posts = :posts"
                ),
                condition="bver = :bver",
                values={
                    ":bk": [_bucket_item(b) for b in rebased.buckets],
                    ":one": 1,
                    ":dd": rebased.drawn_delta,
                    ":g": credits,
                    ":posts": [posting],
                    ":bver": wallet["bver"],
                },
            )
            record = {
                **record_key,
                "kind": "grant",
                "rh": request.request_hash,
                "credits": credits,
                "src": source,
                "pri": prio,
                "exp": expires,
                "at": at,
            }
            try:
                self.store.transact(wallet_update, Put(record))
                return result
            except WriteRejected as rejected:
                old_record = rejected.old[1]
                if old_record is not None:
                    return self._replay_grant(gid, old_record, request)
                # The bucket list changed under us (another grant): read again and retry.
        raise Contention("the wallet's buckets kept changing; retry the request")

    @staticmethod
    def _replay_grant(gid: str, record: dict[str, Any], request: Request) -> Granted:
        if record["rh"] != request.request_hash:
            raise IdempotencyConflict("Idempotency-Key was used with another request body")
        exp = record.get("exp")
        return Granted(
            gid,
            Decimal(record["credits"]),
            record["src"],
            int(record["pri"]),
            None if exp is None else int(exp),
        )

    # -- reads -----------------------------------------------------------------------------

    def transactions(
        self, wallet_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Entry], str | None]:
        items, next_cursor = self.store.query_page(
            wallet_pk(wallet_id), ENTRY_PREFIX, limit, cursor
        )
        if not items and self.store.get(wallet_pk(wallet_id), WALLET_SK) is None:
            raise WalletNotFound(f"wallet {wallet_id!r} does not exist")
        return [
            Entry(
                transaction_id=i["transaction_id"],
                type=i["type"],
                credits=Decimal(i["credits"]),
                balance_after=Decimal(i["balance_after"]),
                at=int(i["at"]),
                feature=i.get("feature"),
                member_id=i.get("member_id"),
                status=i["status"],
            )
            for i in items
        ], next_cursor
