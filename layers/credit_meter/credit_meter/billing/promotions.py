"""Promo codes: defined once, redeemed once per wallet and never beyond a code's cap, each
redemption one transaction (the code's counter, the wallet's redemption record, the wallet)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit_meter.billing import buckets
from credit_meter.billing.buckets import ATTEMPTS, DAY, MAX_GRANT_SECONDS, bucket_update
from credit_meter.core import clock
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.core.errors import (
    Conflict,
    Contention,
    FieldProblem,
    InvalidRequest,
    PromoCodeNotFound,
)
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.ids import grant_id, op_key
from credit_meter.core.wallets import Bucket, Granted
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import PROMO_RECORD, REDEEM_KEY_RECORD
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Store, Update, WriteRejected


@dataclass(frozen=True, slots=True)
class PromoCode:
    code: str
    credits: Decimal
    expires_at: int | None
    credits_expire_at: int | None
    credits_expire_in_days: int | None
    max_redemptions: int | None
    redeemed: int
    created_at: int  # epoch milliseconds


class Promotions:
    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

    def create_promo(self, promo: PromoCode) -> tuple[bool, PromoCode]:
        """Define a code (True); the same definition again answers it (False); another
        definition under a taken code is a conflict."""
        now = clock.now_ts()
        for name, moment in (
            ("expires_at", promo.expires_at),
            ("credits_expire_at", promo.credits_expire_at),
        ):
            if moment is not None and not now < moment <= now + MAX_GRANT_SECONDS:
                raise InvalidRequest(
                    [FieldProblem(name, "must be in the future and within 100 years")]
                )
        item = {
            **items.promo_key(promo.code),
            "kind": "promo",
            "code": promo.code,
            "credits": promo.credits,
            "exp": promo.expires_at,
            "cexp": promo.credits_expire_at,
            "cdays": promo.credits_expire_in_days,
            "cap": promo.max_redemptions,
            "redeemed": 0,
            "created": promo.created_at,
        }
        try:
            self.store.put_new(Put(item))
            return True, promo
        except WriteRejected as rejected:
            first = rejected.old[0]
            if first is None:  # pragma: no cover - a refused Put returns what was there
                raise
        existing = _promo(first)
        same = (existing.credits, existing.expires_at, existing.credits_expire_at) == (
            promo.credits,
            promo.expires_at,
            promo.credits_expire_at,
        ) and (existing.credits_expire_in_days, existing.max_redemptions) == (
            promo.credits_expire_in_days,
            promo.max_redemptions,
        )
        if not same:
            raise Conflict(
                f"promo code {promo.code!r} exists with another definition",
                code="promo-code-exists",
            )
        return False, existing

    def redeem(self, wallet_id: str, code: str, request: Request) -> Granted:
        """Credit a promo code's grant: once per wallet, never beyond the code's cap, in one
        transaction (the code's counter, the wallet's redemption record, the wallet)."""
        key = op_key(wallet_id, "redeem", request.idempotency_key)
        prio = self.catalog.sources["promo"].priority
        for _ in range(ATTEMPTS):
            found = self.store.get(items.promo_key(code))
            if found is None:
                raise PromoCodeNotFound(f"promo code {code!r} does not exist")
            promo = _promo(found)
            now = int(clock.now_ts())
            wallet = wallet_record.read(self.store, wallet_id)
            at = now_ms()
            gid = grant_id(at, wallet_id, "promo", code)
            expires = promo.credits_expire_at
            if promo.credits_expire_in_days is not None:
                expires = now + promo.credits_expire_in_days * DAY
            if expires is not None and expires <= now:
                raise Conflict(
                    f"the credits of promo code {code!r} expired", code="promo-code-expired"
                )
            bucket = Bucket(gid, "promo", promo.credits, prio, at, expires)
            change = buckets.grant_change(wallet, bucket, f"promo code {code}", self.catalog)
            writes: list[Update | Put] = [
                _count(code, promo, now),
                Put(_redemption(wallet_id, code, key, bucket, request)),
                bucket_update(wallet_id, wallet, change),
            ]
            if request.idempotency_key:  # the key may serve one redemption only
                writes.append(Put(_key_record(wallet_id, key, request)))
            try:
                self.store.transact(*writes)
            except WriteRejected as rejected:
                counted, first, _ = rejected.old[:3]
                used_key = rejected.old[3] if len(rejected.old) > 3 else None
                if used_key is not None and used_key["rh"] != request.request_hash:
                    raise key_reused() from None
                if first is not None:
                    if request.idempotency_key and first.get("rk") == key:
                        return buckets.replay_grant(first, request)
                    raise Conflict(
                        f"wallet {wallet_id!r} has already redeemed {code!r}",
                        code="promo-code-already-redeemed",
                    ) from None
                if counted is not None:
                    _refused(_promo(counted), now)
                continue  # the wallet's buckets changed: read again
            return Granted(gid, promo.credits, "promo", prio, expires)
        raise Contention("the wallet kept changing; retry the request")


def _count(code: str, promo: PromoCode, now: int) -> Update:
    """One more redemption of the code, while it redeems and is under its cap."""
    conditions = ["attribute_exists(pk)"]
    values: dict[str, Any] = {":one": 1}
    if promo.expires_at is not None:
        conditions.append("exp >= :now")  # expires_at is the last moment it redeems
        values[":now"] = now
    if promo.max_redemptions is not None:
        conditions.append("redeemed < :cap")
        values[":cap"] = promo.max_redemptions
    return Update(
        key=items.promo_key(code),
        expression="SET redeemed = redeemed + :one",
        condition=" AND ".join(conditions),
        values=values,
    )


def _redemption(
    wallet_id: str, code: str, key: str, bucket: Bucket, request: Request
) -> dict[str, Any]:
    """The wallet's redemption record: once per wallet and code, and the answer to a retry."""
    return {
        **items.record_key(wallet_id, PROMO_RECORD, code),
        "kind": "redemption",
        "gid": bucket.id,
        "rk": key if request.idempotency_key else None,
        "rh": request.request_hash,
        "credits": bucket.amount,
        "src": "promo",
        "pri": bucket.priority,
        "exp": bucket.expires_at,
        "at": bucket.created_at,
    }


def _key_record(wallet_id: str, key: str, request: Request) -> dict[str, Any]:
    return {
        **items.record_key(wallet_id, REDEEM_KEY_RECORD, key),
        "kind": "redemption-key",
        "rh": request.request_hash,
        "ttl": record_ttl(),
    }


def _refused(promo: PromoCode, now: int) -> None:
    if promo.expires_at is not None and promo.expires_at < now:
        raise Conflict(f"promo code {promo.code!r} has expired", code="promo-code-expired")
    if promo.max_redemptions is not None and promo.redeemed >= promo.max_redemptions:
        raise Conflict(
            f"promo code {promo.code!r} has been redeemed its maximum of "
            f"{promo.max_redemptions} times",
            code="promo-code-exhausted",
        )


def _promo(item: dict[str, Any]) -> PromoCode:
    def opt(name: str) -> int | None:
        value = item.get(name)
        return None if value is None else int(value)

    return PromoCode(
        code=item["code"],
        credits=Decimal(item["credits"]),
        expires_at=opt("exp"),
        credits_expire_at=opt("cexp"),
        credits_expire_in_days=opt("cdays"),
        max_redemptions=opt("cap"),
        redeemed=int(item["redeemed"]),
        created_at=int(item["created"]),
    )
