"""The wallet item's stored shape: its attribute names, typed readers, and the update
expressions every use case writes it with.

This module is the one place that knows how the wallet is stored (``docs/data-model.md``, "The
wallet item"). The item is the hot one, so its attributes have short names: each write is billed
on the item's whole size, names included. Use cases read the item through the functions below
and never index it with a literal name; ``tests/unit/test_wallet_record.py`` keeps the names
here and the table in the docs one to one.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from credit_meter.core import alerts, wallets
from credit_meter.core.errors import no_wallet
from credit_meter.core.wallets import Bucket, WalletView
from credit_meter.storage.items import wallet_pk

if TYPE_CHECKING:
    from credit_meter.storage.store import Store

Item = dict[str, Any]

# -- top-level attributes (docs/data-model.md, "The wallet item") ---------------------------

KIND = "kind"  # always "wallet"
CREATED = "created"  # when the wallet was made (ms)
WALLET_ID = "wallet_id"
PLAN = "plan"
ALLOWANCE = "allow"
ORG = "org"
BYPASS = "bp"
BYOK_MEMBERS = "ky"
PENDING_PLAN = "pn"
PENDING_ALLOWANCE = "pa"
ANCHOR_DAY = "anc"
PERIOD_START = "ps"
PERIOD_END = "pe"
OVERAGE = "ovr"
DUE_SHARD = "due_shard"
DUE_AT = "due_at"
REFERRED_BY = "rby"
REFERRALS = "rfc"
BALANCE = "bal"
HELD = "held"
AVAILABLE = "avail"
DRAWN = "drawn"
USED = "used"
BUCKETS = "bk"
BUCKETS_VERSION = "bver"
HOLDS = "hd"
SEQ = "seq"
SWEEP_SHARD = "sweep_shard"
SWEEP_AT = "sweep_at"
LIMIT = "lim"
LIMIT_ALERT = "lat"
LIMIT_HIT = "lhit"
LIMIT_ROOM = "lrem"
ALERT_THRESHOLDS = "alr"
MEMBER_BUDGETS = "mb"
AUTO_TOPUP_THRESHOLD = "atx"
AUTO_TOPUP_STATE = "ats"
AUTO_TOPUP_CROSSING = "atn"
AUTO_TOPUP_RETRY_AFTER = "atb"
POSTS = "posts"

ATTRIBUTES = frozenset(
    {
        KIND, CREATED, WALLET_ID, PLAN, ALLOWANCE, ORG, BYPASS, BYOK_MEMBERS, PENDING_PLAN,
        PENDING_ALLOWANCE, ANCHOR_DAY, PERIOD_START, PERIOD_END, OVERAGE, DUE_SHARD, DUE_AT,
        REFERRED_BY, REFERRALS, BALANCE, HELD, AVAILABLE, DRAWN, USED, BUCKETS, BUCKETS_VERSION,
        HOLDS, SEQ, SWEEP_SHARD, SWEEP_AT, LIMIT, LIMIT_ALERT, LIMIT_HIT, LIMIT_ROOM,
        ALERT_THRESHOLDS, MEMBER_BUDGETS, AUTO_TOPUP_THRESHOLD, AUTO_TOPUP_STATE,
        AUTO_TOPUP_CROSSING, AUTO_TOPUP_RETRY_AFTER, POSTS,
    }
)  # fmt: skip

# -- inside an open hold (``hd.<key>``) -----------------------------------------------------

HOLD_CREDITS = "c"
HOLD_EXPIRES_AT = "x"
HOLD_FEATURE = "f"
HOLD_MEMBER = "m"
HOLD_BUDGET_TAG = "b"  # the member's tag when the hold counts against the member's budget
HOLD_MODE = "p"  # the pricing mode (byok, bypass) when not credits
HOLD_DIGEST = "h"  # a prefix of the request's digest

# -- inside a member budget (``mb.<tag>``) --------------------------------------------------

BUDGET_MEMBER = "n"
BUDGET_CAP = "c"
BUDGET_USED = "u"
BUDGET_ROOM = "r"
BUDGET_HIT = "h"

WALLET_SK = "W"
# ``lrem`` (room left under the spending limit) of a wallet without a limit: every debit still
# counts down from it, so the hot path's one expression serves wallets with and without limits.
NO_LIMIT_ROOM = Decimal(10**15)
# A member's budget lives in the wallet (``mb.<tag>``) so it is tested in the debit's own write;
# this many at most keeps the hot item small (each adds ~60 bytes).
MAX_MEMBER_BUDGETS = 32
# Wallets with open holds are spread over this many partitions of the sweep index.
SWEEP_SHARDS = 16
SWEEP_INDEX = "SweepIndex"
# Wallets are spread over this many partitions of the due index (period ends, bucket expiries).
DUE_SHARDS = 16
DUE_INDEX = "DueIndex"


def key(wallet_id: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": WALLET_SK}


def sweep_shard(wallet_id: str) -> str:
    return f"S#{zlib.crc32(wallet_id.encode()) % SWEEP_SHARDS:02d}"


def due_shard(wallet_id: str) -> str:
    return f"D#{zlib.crc32(wallet_id.encode()) % DUE_SHARDS:02d}"


def read(store: Store, wallet_id: str) -> Item:
    """The wallet item, or :class:`~credit_meter.core.errors.WalletNotFound` (404)."""
    item = store.get(key(wallet_id))
    if item is None:
        raise no_wallet(wallet_id)
    return item


# -- typed readers ---------------------------------------------------------------------------


def _dec(item: Item, name: str) -> Decimal:
    return Decimal(item[name])


def _opt_dec(item: Item, name: str) -> Decimal | None:
    value = item.get(name)
    return None if value is None else Decimal(value)


def wallet_id(item: Item) -> str:
    return str(item[WALLET_ID])


def plan(item: Item) -> str:
    return str(item[PLAN])


def allowance(item: Item) -> Decimal:
    return _dec(item, ALLOWANCE)


def balance(item: Item) -> Decimal:
    return _dec(item, BALANCE)


def held(item: Item) -> Decimal:
    return _dec(item, HELD)


def available(item: Item) -> Decimal:
    return _dec(item, AVAILABLE)


def drawn(item: Item) -> Decimal:
    return _dec(item, DRAWN)


def used(item: Item) -> Decimal:
    return _dec(item, USED)


def period_start(item: Item) -> int:
    return int(item[PERIOD_START])


def period_end(item: Item) -> int:
    return int(item[PERIOD_END])


def overage(item: Item) -> bool:
    return bool(item.get(OVERAGE, False))


def bypass(item: Item) -> bool:
    return bool(item.get(BYPASS, False))


def byok_members(item: Item) -> set[str]:
    return set(item.get(BYOK_MEMBERS, ()))


def org(item: Item) -> str | None:
    return item.get(ORG)


def limit(item: Item) -> Decimal | None:
    return _opt_dec(item, LIMIT)


def limit_alert(item: Item) -> Decimal | None:
    return _opt_dec(item, LIMIT_ALERT)


def limit_room(item: Item) -> Decimal | None:
    """``lrem`` as stored (None only on wallets written before limits existed)."""
    return _opt_dec(item, LIMIT_ROOM)


def limit_hit(item: Item) -> Decimal | None:
    """The period start in which the limit last refused a debit, if it did."""
    return _opt_dec(item, LIMIT_HIT)


def has_alert_thresholds(item: Item) -> bool:
    return ALERT_THRESHOLDS in item


def open_holds(item: Item) -> dict[str, Item]:
    """The open holds by key (each ``{c, x, f, m?, b?, p?, h}``; read them with ``hold_*``)."""
    holds: dict[str, Item] = item.get(HOLDS, {})
    return holds


def hold_credits(hold: Item) -> Decimal:
    return Decimal(hold[HOLD_CREDITS])


def hold_expires_at(hold: Item) -> int:
    return int(hold[HOLD_EXPIRES_AT])


def hold_budget_tag(hold: Item) -> str | None:
    return hold.get(HOLD_BUDGET_TAG)


def hold_mode(hold: Item) -> str | None:
    return hold.get(HOLD_MODE)


def hold_digest(hold: Item) -> str:
    return str(hold[HOLD_DIGEST])


def member_budgets(item: Item) -> dict[str, Item]:
    """The member budgets by tag (each ``{n, c?, u, r, h?}``; read them with ``budget_*``)."""
    budgets: dict[str, Item] = item.get(MEMBER_BUDGETS, {})
    return budgets


def has_member_budgets(item: Item) -> bool:
    return MEMBER_BUDGETS in item


def budget_member(entry: Item) -> str:
    return str(entry[BUDGET_MEMBER])


def budget_cap(entry: Item) -> Decimal | None:
    return _opt_dec(entry, BUDGET_CAP)


def budget_used(entry: Item) -> Decimal:
    return _dec(entry, BUDGET_USED)


def budget_room(entry: Item) -> Decimal:
    return _dec(entry, BUDGET_ROOM)


def budget_hit(entry: Item) -> Decimal | None:
    return _opt_dec(entry, BUDGET_HIT)


def held_for_budget(item: Item, tag: str) -> Decimal:
    """Credits in the open holds counted against the member budget ``tag``."""
    return sum(
        (hold_credits(h) for h in open_holds(item).values() if hold_budget_tag(h) == tag),
        Decimal(0),
    )


# -- buckets and postings ----------------------------------------------------------------------


def bucket_item(b: Bucket) -> Item:
    stored: Item = {
        "id": b.id,
        "src": b.source,
        "amt": b.amount,
        "pri": b.priority,
        "at": b.created_at,
    }
    if b.expires_at is not None:
        stored["exp"] = b.expires_at
    if b.granted is not None:
        stored["g"] = b.granted
    if b.kept:
        stored["kp"] = True
    return stored


def bucket(stored: Item) -> Bucket:
    return Bucket(
        id=stored["id"],
        source=stored["src"],
        amount=Decimal(stored["amt"]),
        priority=int(stored["pri"]),
        created_at=int(stored["at"]),
        expires_at=int(stored["exp"]) if "exp" in stored else None,
        granted=Decimal(stored["g"]) if "g" in stored else None,
        kept=bool(stored.get("kp", False)),
    )


def buckets(item: Item) -> list[Bucket]:
    return [bucket(b) for b in item.get(BUCKETS, [])]


def posting(
    transaction_id: str,
    kind: str,
    credits: Decimal,
    status: str,
    at: int,
    *,
    feature: str | None = None,
    member_id: str | None = None,
    hold_key: str | None = None,
    source: str | None = None,
    bucket_id: str | None = None,
    expires_at: int | None = None,
    reason: str | None = None,
    partial: bool = False,
    usage: list[str] | None = None,
    mode: str | None = None,
) -> Item:
    """One ledger posting as the wallet write leaves it for the projector (``posts``).

    A reservation's posting names its hold (``k``) instead of repeating its feature and member:
    the projector reads them from the hold in the write's old image.
    """
    post: Item = {"id": transaction_id, "ty": kind, "d": credits, "st": status, "at": at}
    optional = {
        "f": feature,
        "m": member_id,
        "k": hold_key,
        "src": source,
        "b": bucket_id,
        "x": expires_at,
        "r": reason,
    }
    post.update({name: value for name, value in optional.items() if value is not None})
    if partial:  # an expiry that leaves part of the bucket (for open holds)
        post["pt"] = True
    if usage:  # the priced usage lines (charges and commits costed by usage)
        post["u"] = usage
    if mode is not None:  # priced as BYOK or bypass rather than in credits
        post["mo"] = mode
    return post


def view(item: Item) -> WalletView:
    lim = limit(item)
    room = limit_room(item)
    return WalletView(
        wallet_id=wallet_id(item),
        plan=plan(item),
        period_start=period_start(item),
        period_end=period_end(item),
        balance=balance(item),
        held=held(item),
        available=available(item),
        allowance=allowance(item),
        used=used(item),
        buckets=wallets.remaining(buckets(item), drawn(item)),
        anchor_day=int(item.get(ANCHOR_DAY, 1)),
        pending_plan=item.get(PENDING_PLAN),
        overage=overage(item),
        state=alerts.wallet_state(item),
        alert_threshold=limit_alert(item),
        allowed_limit=lim,
        limit_remaining=None if lim is None or room is None else max(Decimal(0), room),
        org_id=org(item),
        bypass=bypass(item),
    )
