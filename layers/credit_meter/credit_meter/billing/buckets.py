"""The bucket change every grant-like write makes: a new bucket list in place of the one read,
guarded by its version (``bver``), with the balance moved relative to what is stored. Shared by
the billing use cases and by payments (a purchase is a bucket too).

Read, compute the new list in :mod:`credit_meter.core.wallets`, write on condition that the
version is still the one read, and read again if another bucket change won the race. Amounts
are applied relative to what is stored (``bal = bal + :g``), so metering writes that land
between the read and the write are neither blocked nor lost. ``docs/data-model.md`` lists every
condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter.core import clock, periods, wallets
from credit_meter.core.catalog import Catalog
from credit_meter.core.errors import Conflict
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.wallets import Bucket, Granted
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Update

ATTEMPTS = 10
DAY = 86400
MAX_GRANT_SECONDS = 100 * 365 * 86400
# Open grants a wallet may hold. Each is ~95 bytes of the hot wallet item (every metering
# write is billed per started KB of it) and the item must stay far below DynamoDB's 400 KB;
# the allowance, its upgrade and rollover are never refused for it.
MAX_BUCKETS = 32


@dataclass(frozen=True, slots=True)
class BucketChange:
    """A write that replaces a wallet's bucket list; what else it sets rides along."""

    buckets: list[Bucket]
    drawn_delta: Decimal
    balance_delta: Decimal
    posts: list[dict[str, Any]]
    period_end: int
    sets: dict[str, Any] = field(default_factory=dict)  # attribute -> value
    removes: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()  # more SET clauses, their values in ``values``
    condition: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # for ``clauses``


def bucket_update(wallet_id: str, wallet: dict[str, Any], change: BucketChange) -> Update:
    """The conditional write of ``change`` to the wallet as read (its ``bver``)."""
    names = {f"#s{i}": name for i, name in enumerate(change.sets)} | change.names
    values: dict[str, Any] = {
        ":bk": [wallet_record.bucket_item(b) for b in change.buckets],
        ":one": 1,
        ":dd": change.drawn_delta,
        ":g": change.balance_delta,
        ":n": len(change.posts),
        ":posts": change.posts,
        ":due": periods.due_at(change.buckets, change.period_end),
        ":dsh": wallet_record.due_shard(wallet_id),
        ":bver": wallet[wallet_record.BUCKETS_VERSION],
        **{f":s{i}": value for i, value in enumerate(change.sets.values())},
        **change.values,
    }
    w = wallet_record
    sets = [
        f"{w.BUCKETS} = :bk",
        f"{w.BUCKETS_VERSION} = {w.BUCKETS_VERSION} + :one",
        f"{w.DRAWN} = {w.DRAWN} + :dd",
        f"{w.BALANCE} = {w.BALANCE} + :g",
        f"{w.AVAILABLE} = {w.AVAILABLE} + :g",
        f"{w.SEQ} = {w.SEQ} + :n",
        f"{w.POSTS} = :posts",
        f"{w.DUE_AT} = :due",
        f"{w.DUE_SHARD} = :dsh",
        *(f"#s{i} = :s{i}" for i in range(len(change.sets))),
        *change.clauses,
    ]
    expression = "SET " + ", ".join(sets)
    if change.removes:
        names.update({f"#r{i}": name for i, name in enumerate(change.removes)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(change.removes)))
    condition = f"{w.BUCKETS_VERSION} = :bver"
    if change.condition:
        condition += f" AND {change.condition}"
    return Update(
        key=wallet_record.key(wallet_id),
        expression=expression,
        condition=condition,
        names=names,
        values=values,
    )


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
