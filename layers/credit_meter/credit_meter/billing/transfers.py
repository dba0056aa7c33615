"""Transfers: credits moved between two wallets in one transaction (a debit on the source, a
``transfer`` grant on the target, and the transfer's record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter.billing import buckets
from credit_meter.billing.buckets import ATTEMPTS, bucket_update
from credit_meter.core import wallets
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.core.errors import (
    Contention,
    FieldProblem,
    InsufficientCredits,
    InvalidRequest,
    WalletNotFound,
    no_wallet,
)
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.ids import grant_id, op_key
from credit_meter.core.money import fmt
from credit_meter.core.wallets import Bucket
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import TRANSFER_RECORD
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Store, Update, WriteRejected


@dataclass(frozen=True, slots=True)
class Transferred:
    transfer_id: str
    from_wallet_id: str
    to_wallet_id: str
    credits: Decimal
    grant_id: str
    replayed: bool = field(default=False, compare=False)


class Transfers:
    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def transfer(
        self,
        from_wallet: str,
        to_wallet: str,
        credits: Decimal,
        reason: str | None,
        request: Request,
    ) -> Transferred:
        """Move credits between two wallets atomically: a debit here, a ``transfer`` grant
        there, and the transfer's record, in one transaction. The grant expires when the
        soonest-expiring credits it was drawn from would have (so a transfer cannot make
        expiring credits permanent), as far as the source wallet read before shows."""
        if from_wallet == to_wallet:
            raise InvalidRequest([FieldProblem("to_wallet_id", "is the wallet itself")])
        key = op_key(from_wallet, "transfer", request.idempotency_key)
        tid = f"xfr_{key}"
        record_key = items.record_key(from_wallet, TRANSFER_RECORD, key)
        for _ in range(ATTEMPTS):
            target = self.store.get(wallet_record.key(to_wallet))
            if target is None:
                first = self.store.get(record_key)
                if first is not None:
                    return _replay(tid, from_wallet, first, request)
                raise WalletNotFound(f"wallet {to_wallet!r} (to_wallet_id) does not exist")
            source = self.store.get(wallet_record.key(from_wallet))
            expires = None if source is None else _drawn_expiry(source, credits)
            at = now_ms()
            gid = grant_id(at, to_wallet, "transfer", from_wallet, key)
            prio = self.catalog.sources["transfer"].priority
            bucket = Bucket(gid, "transfer", credits, prio, at, expires)
            record = {
                **record_key,
                "kind": "transfer",
                "rh": request.request_hash,
                "to": to_wallet,
                "credits": credits,
                "gid": gid,
                "at": at,
                "ttl": record_ttl(),
            }
            try:
                self.store.transact(
                    _debit(from_wallet, credits, tid, at, reason),
                    bucket_update(
                        to_wallet,
                        target,
                        buckets.grant_change(target, bucket, reason, self.catalog),
                    ),
                    Put(record),
                )
            except WriteRejected as rejected:
                debited, credited, first = rejected.old
                if first is not None:
                    return _replay(tid, from_wallet, first, request)
                if credited is not None:
                    continue  # the target's buckets changed: read again
                raise _refused(from_wallet, debited, credits) from None
            return Transferred(tid, from_wallet, to_wallet, credits, gid)
        raise Contention("the target wallet kept changing; retry the request")


def _debit(wallet_id: str, credits: Decimal, tid: str, at: int, reason: str | None) -> Update:
    return wallet_record.transfer_debit_update(
        wallet_id,
        credits,
        wallet_record.posting(tid, "transfer", -credits, "posted", at, reason=reason),
    )


def _refused(wallet_id: str, source: dict[str, Any] | None, credits: Decimal) -> Exception:
    """Why the source wallet refused the debit: it does not exist, or has too little."""
    if source is None:
        return no_wallet(wallet_id)
    available = wallet_record.available(source)
    return InsufficientCredits(
        f"{fmt(credits)} credits to transfer, {fmt(available)} available",
        available=available,
        requested=credits,
    )


def _replay(tid: str, from_wallet: str, first: dict[str, Any], request: Request) -> Transferred:
    if first["rh"] != request.request_hash:
        raise key_reused()
    return Transferred(
        tid, from_wallet, first["to"], Decimal(first["credits"]), first["gid"], replayed=True
    )


def _drawn_expiry(wallet: dict[str, Any], credits: Decimal) -> int | None:
    """The soonest expiry among the buckets the next ``credits`` drawn would come from, in the
    wallet as read (a debit landing before the write may shift the draw to later buckets; the
    grant keeps the expiry computed here)."""
    soonest: int | None = None
    for view in wallets.remaining(wallet_record.buckets(wallet), wallet_record.drawn(wallet)):
        if credits <= 0:
            break
        if view.remaining <= 0:
            continue
        credits -= view.remaining
        exp = view.bucket.expires_at
        if exp is not None and (soonest is None or exp < soonest):
            soonest = exp
    return soonest
