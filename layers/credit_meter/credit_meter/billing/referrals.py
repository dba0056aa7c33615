"""Referrals: the referred wallet (once in its life) and its referrer (up to the catalog's
maximum of rewarded referrals) each get a ``referral`` grant, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from credit_meter.billing import buckets
from credit_meter.billing.buckets import ATTEMPTS, DAY, bucket_update
from credit_meter.core import clock
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.core.errors import (
    Conflict,
    Contention,
    FieldProblem,
    InvalidRequest,
    WalletNotFound,
)
from credit_meter.core.ids import grant_id
from credit_meter.core.wallets import Bucket, Granted
from credit_meter.storage import wallet_record
from credit_meter.storage.records import now_ms
from credit_meter.storage.store import Store, Update, WriteRejected


@dataclass(frozen=True, slots=True)
class Referred:
    wallet_id: str
    referrer_wallet_id: str
    grant: Granted
    referrer_grant: Granted | None  # None once the referrer had its maximum of rewards


class Referrals:
    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def refer(self, wallet_id: str, referrer: str) -> Referred:
        """Reward a referral: the referred wallet (once in its life) and its referrer (up to the
        catalog's maximum of rewarded referrals) each get a ``referral`` grant, together."""
        if wallet_id == referrer:
            raise InvalidRequest([FieldProblem("referrer_wallet_id", "is the wallet itself")])
        cfg = self.catalog.referral
        for _ in range(ATTEMPTS):
            wallet = wallet_record.read(self.store, wallet_id)
            mark = wallet.get(wallet_record.REFERRED_BY)
            if mark is not None:
                return self._replay(wallet_id, referrer, mark)
            other = self.store.get(wallet_record.key(referrer))
            if other is None:
                raise WalletNotFound(f"wallet {referrer!r} (referrer_wallet_id) does not exist")
            if other.get(wallet_record.REFERRED_BY, {}).get("w") == wallet_id:
                raise InvalidRequest(
                    [FieldProblem("referrer_wallet_id", "was referred by this wallet")]
                )
            at = now_ms()
            expires = None
            if cfg.expires_in_days is not None:
                expires = int(clock.now_ts()) + cfg.expires_in_days * DAY
            rewarded = _referrals(other) < cfg.max_rewarded_per_referrer
            mark = _referral_mark(referrer, at, rewarded, expires)
            writes = [
                self._write(
                    wallet_id,
                    wallet,
                    self._bucket(wallet_id, referrer, at, expires, referee=True),
                    f"referred by {referrer}",
                    sets={wallet_record.REFERRED_BY: mark},
                    condition=wallet_record.not_referred_guard(),
                )
            ]
            if rewarded:
                writes.append(
                    self._write(
                        referrer,
                        other,
                        self._bucket(referrer, wallet_id, at, expires, referee=False),
                        f"referred {wallet_id}",
                        sets={wallet_record.REFERRALS: _referrals(other) + 1},
                    )
                )
            try:
                self.store.transact(*writes)
            except WriteRejected:
                continue  # a bucket list changed, or a racing referral came first: look again
            return self._replay(wallet_id, referrer, mark)
        raise Contention("the wallets kept changing; retry the request")

    def _bucket(
        self, wallet_id: str, other: str, at: int, expires: int | None, *, referee: bool
    ) -> Bucket:
        """The referral grant of ``wallet_id`` (the referred one or its referrer)."""
        cfg = self.catalog.referral
        return Bucket(
            grant_id(at, wallet_id, "referral", other),
            "referral",
            cfg.referee_credits if referee else cfg.referrer_credits,
            self.catalog.sources["referral"].priority,
            at,
            expires,
        )

    def _write(
        self,
        wallet_id: str,
        wallet: dict[str, Any],
        bucket: Bucket,
        reason: str,
        sets: dict[str, Any],
        condition: str = "",
    ) -> Update:
        change = buckets.grant_change(
            wallet, bucket, reason, self.catalog, sets=sets, condition=condition
        )
        return bucket_update(wallet_id, wallet, change)

    def _replay(self, wallet_id: str, referrer: str, rby: dict[str, Any]) -> Referred:
        if rby["w"] != referrer:
            raise Conflict(
                f"wallet {wallet_id!r} was already referred by another wallet",
                code="already-referred",
            )
        cfg = self.catalog.referral
        prio = self.catalog.sources["referral"].priority
        at = int(rby["at"])
        exp = None if rby.get("x") is None else int(rby["x"])
        mine = Granted(
            grant_id(at, wallet_id, "referral", referrer),
            cfg.referee_credits,
            "referral",
            prio,
            exp,
        )
        theirs = None
        if rby.get("rw"):
            theirs = Granted(
                grant_id(at, referrer, "referral", wallet_id),
                cfg.referrer_credits,
                "referral",
                prio,
                exp,
            )
        return Referred(wallet_id, referrer, mine, theirs)


def _referrals(wallet: dict[str, Any]) -> int:
    """How many referrals the wallet has been rewarded for as a referrer."""
    return int(wallet.get(wallet_record.REFERRALS, 0))


def _referral_mark(referrer: str, at: int, rewarded: bool, expires: int | None) -> dict[str, Any]:
    """What the referred wallet keeps of its referral (``rby``): enough to answer a retry."""
    mark: dict[str, Any] = {"w": referrer, "at": at, "rw": rewarded}
    if expires is not None:
        mark["x"] = expires
    return mark
