"""Grants: credits given to a wallet (a bucket each), the grants list, voids of unused grants,
and manual adjustments (a grant up, a debit down)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from credit_meter.billing import buckets
from credit_meter.billing.buckets import ATTEMPTS, MAX_GRANT_SECONDS, BucketChange, bucket_update
from credit_meter.core import clock, periods, wallets
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.core.errors import (
    Conflict,
    Contention,
    FieldProblem,
    GrantNotFound,
    InvalidRequest,
    no_wallet,
)
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.ids import grant_id, op_key
from credit_meter.core.money import ZERO
from credit_meter.core.wallets import Bucket, Granted
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import GRANT_RECORD, VOID_RECORD
from credit_meter.storage.pages import decode_cursor, encode_cursor
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Store, WriteRejected

# Grants that cannot be voided: the allowance (it follows the plan), purchases (paid for: taken
# back only by a refund) and transfers (the sender paid for them).
_NOT_VOIDABLE = ("monthly", "rollover", "purchase", "transfer")
# Sources only the service itself grants.
_NOT_GRANTABLE = {
    "monthly": "the plan",
    "rollover": "the monthly reset",
    "transfer": "POST /v1/wallets/{id}/transfers",
}


@dataclass(frozen=True, slots=True)
class GrantLine:
    """One grant as the grants list shows it."""

    grant_id: str
    source: str
    credits: Decimal
    remaining: Decimal
    status: str  # active, used, expired, voided
    granted_at: int  # epoch milliseconds
    expires_at: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Adjusted:
    adjustment_id: str
    credits: Decimal
    reason: str
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Voided:
    grant_id: str
    voided: Decimal


class Grants:
    """Grants, voids and adjustments of one wallet at a time."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def grant(
        self,
        wallet_id: str,
        credits: Decimal,
        source: str,
        request: Request,
        expires_at: datetime | None = None,
        priority: int | None = None,
        reason: str | None = None,
    ) -> Granted:
        if source not in self.catalog.sources:
            raise InvalidRequest([FieldProblem("source", f"unknown source {source!r}")])
        if source in _NOT_GRANTABLE:
            raise InvalidRequest(
                [FieldProblem("source", f"{source} credits come from {_NOT_GRANTABLE[source]}")]
            )
        return self._grant(wallet_id, credits, source, request, expires_at, priority, reason)

    def _grant(
        self,
        wallet_id: str,
        credits: Decimal,
        source: str,
        request: Request,
        expires_at: datetime | None,
        priority: int | None,
        reason: str | None,
        op: str = "grant",
    ) -> Granted:
        key = op_key(wallet_id, op, request.idempotency_key)
        record_key = items.record_key(wallet_id, GRANT_RECORD, key)
        if expires_at is not None and not (
            clock.now_ts() < expires_at.timestamp() <= clock.now_ts() + MAX_GRANT_SECONDS
        ):
            # A retry of a grant made before its credits expired still gets its first result.
            first = self.store.get(record_key)
            if first is not None:
                return buckets.replay_grant(first, request)
            raise InvalidRequest(
                [FieldProblem("expires_at", "must be in the future and within 100 years")]
            )
        prio = self.catalog.sources[source].priority if priority is None else priority
        for _ in range(ATTEMPTS):
            wallet = wallet_record.read(self.store, wallet_id)
            at = now_ms()
            gid = grant_id(at, wallet_id, op, key)
            expires = None if expires_at is None else int(expires_at.timestamp())
            if (
                expires is None
                and source == "purchase"
                and buckets.purchases_expire(wallet, self.catalog)
            ):
                expires = buckets.period_end(wallet)
            bucket = Bucket(gid, source, credits, prio, at, expires)
            change = buckets.grant_change(wallet, bucket, reason, self.catalog)
            record = {
                **record_key,
                "kind": "grant",
                "gid": gid,
                "rh": request.request_hash,
                "credits": credits,
                "src": source,
                "pri": prio,
                "exp": expires,
                "at": at,
            }
            try:
                self.store.transact(bucket_update(wallet_id, wallet, change), Put(record))
                return Granted(gid, credits, source, prio, expires)
            except WriteRejected as rejected:
                if rejected.old[1] is not None:
                    return buckets.replay_grant(rejected.old[1], request)
                # The bucket list changed under us (another grant): read again and retry.
        raise Contention("the wallet's buckets kept changing; retry the request")

    def grants(
        self, wallet_id: str, limit: int, cursor: str | None
    ) -> tuple[list[GrantLine], str | None]:
        """The wallet's grants, newest first, with what each has left (from the wallet)."""
        start = None if cursor is None else decode_cursor(cursor, items.GRANT_PREFIX)
        wallet = wallet_record.read(self.store, wallet_id)
        found, last = self.store.query_page(
            items.wallet_pk(wallet_id), items.GRANT_PREFIX, limit, start
        )
        left = {
            v.bucket.id: v.remaining
            for v in wallets.remaining(wallet_record.buckets(wallet), wallet_record.drawn(wallet))
        }
        lines = [_grant_line(g, left) for g in found if "grant_id" in g]
        # A line without grant_id had its end projected before the grant itself: not shown yet.
        return lines, None if last is None else encode_cursor(last)

    def void_grant(self, wallet_id: str, gid: str) -> Voided:
        """Take back a grant nothing has been drawn from. Voiding twice answers the same."""
        for _ in range(ATTEMPTS):
            wallet = wallet_record.read(self.store, wallet_id)
            held = wallet_record.buckets(wallet)
            bucket = next((b for b in held if b.id == gid), None)
            if bucket is None:
                return self._explain_void(wallet_id, gid)
            if bucket.source in _NOT_VOIDABLE:
                raise Conflict(
                    f"{bucket.source} credits cannot be voided", code="grant-not-voidable"
                )
            voided = periods.void(held, wallet_record.drawn(wallet), gid)
            if voided is None:
                raise Conflict(f"grant {gid} has been used in part", code="grant-in-use")
            at = now_ms()
            post = wallet_record.posting(
                f"vd_{gid.removeprefix('grt_')}",
                "void",
                -voided.amount,
                "posted",
                at,
                source=bucket.source,
                bucket_id=gid,
            )
            guard, guard_values = wallet_record.void_guard(voided.amount, voided.drawn_before)
            change = BucketChange(
                buckets=voided.buckets,
                drawn_delta=ZERO,
                balance_delta=-voided.amount,
                posts=[post],
                period_end=wallet_record.period_end(wallet),
                condition=guard,
                values=guard_values,
            )
            record = {
                **items.record_key(wallet_id, VOID_RECORD, gid),
                "kind": "void",
                "credits": voided.amount,
                "at": at,
            }
            try:
                self.store.transact(bucket_update(wallet_id, wallet, change), Put(record))
            except WriteRejected as rejected:
                if rejected.old[1] is not None:  # voided meanwhile by a racing request
                    return Voided(gid, Decimal(rejected.old[1]["credits"]))
                old = rejected.old[0]
                if old is not None and wallet_record.available(old) < voided.amount:
                    raise Conflict(
                        f"grant {gid}: its credits are held by open reservations",
                        code="grant-in-use",
                    ) from None
                continue  # drawn from meanwhile, or the buckets changed: look again
            return Voided(gid, voided.amount)
        raise Contention("the wallet kept changing; retry the request")

    def _explain_void(self, wallet_id: str, gid: str) -> Voided:
        voided = self.store.get(items.record_key(wallet_id, VOID_RECORD, gid))
        if voided is not None:  # a retry: the same answer
            return Voided(gid, Decimal(voided["credits"]))
        line = self.store.get(items.grant_item_key(wallet_id, gid))
        if line is None:
            raise GrantNotFound(f"grant {gid!r} does not exist or is not listed yet")
        raise Conflict(
            f"grant {gid} is {line.get('status') or 'used up'}", code="grant-not-voidable"
        )

    def adjust(self, wallet_id: str, credits: Decimal, reason: str, request: Request) -> Adjusted:
        """A manual correction. Positive: a ``manual`` grant. Negative: a debit that may take
        the balance below zero (new holds are then refused until it is repaid)."""
        if credits > 0:
            g = self._grant(wallet_id, credits, "manual", request, None, None, reason, "adjust")
            return Adjusted(g.grant_id, g.credits, reason)
        key = op_key(wallet_id, "adjust", request.idempotency_key)
        aid = f"adj_{key}"
        at = now_ms()
        amount = -credits
        wallet_update = wallet_record.adjustment_debit_update(
            wallet_id,
            amount,
            wallet_record.posting(aid, "adjustment", credits, "posted", at, reason=reason),
        )
        record = {
            # Under the same key as a positive adjustment's grant record: one Idempotency-Key
            # serves one adjustment, whichever its sign.
            **items.record_key(wallet_id, GRANT_RECORD, key),
            "kind": "adjustment",
            "rh": request.request_hash,
            "credits": credits,
            "reason": reason,
            "at": at,
            "ttl": record_ttl(),
        }
        try:
            self.store.transact(wallet_update, Put(record))
        except WriteRejected as rejected:
            first = rejected.old[1]
            if first is None:
                raise no_wallet(wallet_id) from None
            if first["rh"] != request.request_hash or first.get("kind") != "adjustment":
                raise key_reused() from None
            return Adjusted(aid, Decimal(first["credits"]), first["reason"], replayed=True)
        return Adjusted(aid, credits, reason)


def _grant_line(g: dict[str, Any], left: dict[str, Decimal]) -> GrantLine:
    gid = g["grant_id"]
    remaining = left.get(gid, ZERO)
    # Still in the wallet: the wallet says how much is left. Gone: expired or voided (the line
    # says), else used up.
    status = ("active" if remaining > 0 else "used") if gid in left else g.get("status", "used")
    exp = g.get("expires_at")
    return GrantLine(
        grant_id=gid,
        source=g["source"],
        credits=Decimal(g["credits"]),
        remaining=remaining,
        status=status,
        granted_at=int(g["at"]),
        expires_at=None if exp is None else int(exp),
        reason=g.get("reason"),
    )
