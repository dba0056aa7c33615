"""The bucket change every grant-like write makes: a new bucket list in place of the one read,
guarded by its version, with the balance moved relative to what is stored. Shared by the
billing use cases and by payments (a purchase is a bucket too).

Read, compute the new list in :mod:`credit_meter.core.wallets`, write on condition that the
version is still the one read, and read again if another bucket change won the race. The write
itself (:class:`BucketChange`, :func:`bucket_update`) is spelt in
:mod:`credit_meter.storage.wallet_record.lifecycle`, the owner of the wallet's stored shape, and
re-exported here for the use cases; ``docs/data-model.md`` lists every condition.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from credit_meter.core import clock, periods, wallets
from credit_meter.core.catalog import Catalog
from credit_meter.core.errors import Conflict
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.wallets import Bucket, Granted
from credit_meter.storage import wallet_record
from credit_meter.storage.wallet_record import BucketChange as BucketChange
from credit_meter.storage.wallet_record import bucket_update as bucket_update

ATTEMPTS = 10
DAY = 86400
MAX_GRANT_SECONDS = 100 * 365 * 86400
# Open grants a wallet may hold. Each is ~95 bytes of the hot wallet item (every metering
# write is billed per started KB of it) and the item must stay far below DynamoDB's 400 KB;
# the allowance, its upgrade and rollover are never refused for it.
MAX_BUCKETS = 32


def add_bucket(
    buckets: list[Bucket], drawn: Decimal, bucket: Bucket, catalog: Catalog
) -> wallets.Rebased:
    """wallets.add_bucket, refused when the wallet already holds its maximum of grants."""
    rebased = wallets.add_bucket(buckets, drawn, bucket, catalog)
    if len(rebased.buckets) > MAX_BUCKETS:
        raise Conflict(
            f"the wallet holds {MAX_BUCKETS} grants with credits left; spend or void some first",
            code="too-many-grants",
        )
    return rebased


def grant_change(
    wallet: dict[str, Any], bucket: Bucket, reason: str | None, catalog: Catalog, **more: Any
) -> BucketChange:
    """The change that adds one granted bucket (within the maximum) and posts its grant."""
    held, drawn = wallet_record.buckets(wallet), wallet_record.drawn(wallet)
    rebased = add_bucket(held, drawn, bucket, catalog)
    return BucketChange(
        buckets=rebased.buckets,
        drawn_delta=rebased.drawn_delta,
        balance_delta=bucket.amount,
        posts=[grant_post(bucket, bucket.created_at, reason)],
        period_end=wallet_record.period_end(wallet),
        **more,
    )


def grant_post(b: Bucket, at: int, reason: str | None = None) -> dict[str, Any]:
    return wallet_record.posting(
        b.id,
        "grant",
        b.amount,
        "posted",
        at,
        source=b.source,
        bucket_id=b.id,
        expires_at=b.expires_at,
        reason=reason,
    )


def granted(record: dict[str, Any]) -> Granted:
    """A grant as its operation record (grant or redemption) keeps it."""
    exp = record.get("exp")
    return Granted(
        record["gid"],
        Decimal(record["credits"]),
        record["src"],
        int(record["pri"]),
        None if exp is None else int(exp),
    )


def replay_grant(record: dict[str, Any], request: Request) -> Granted:
    """The first answer to a retried grant; another request under its key is refused."""
    if record["rh"] != request.request_hash:
        raise key_reused()
    return granted(record)


def period_end(wallet: dict[str, Any]) -> int:
    """The end of the period the wallet is in now — also in the minutes between a period's end
    and its reset, when the stored one is already past."""
    pe, now = wallet_record.period_end(wallet), int(clock.now_ts())
    anchor_day = int(wallet.get(wallet_record.ANCHOR_DAY, 1))
    return pe if pe > now else periods.period_at(pe, anchor_day, now)[1]


def purchases_expire(wallet: dict[str, Any], catalog: Catalog) -> bool:
    """Whether the wallet's plan makes purchased credits expire at the next reset."""
    plan = catalog.plans.get(wallet_record.plan(wallet))
    return plan is not None and plan.purchases_expire_at_reset
