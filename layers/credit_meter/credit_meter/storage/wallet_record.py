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
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit_meter.core import alerts, wallets
from credit_meter.core.alerts import BudgetFacts, Threshold, ThresholdType, WalletFacts
from credit_meter.core.catalog import BYOK, BYPASS
from credit_meter.core.errors import no_wallet
from credit_meter.core.wallets import Bucket, WalletView
from credit_meter.storage.items import wallet_pk
from credit_meter.storage.store import Store, Update

Item = dict[str, Any]
ZERO = Decimal(0)

# -- top-level attributes (docs/data-model.md, "The wallet item") ---------------------------

KIND = "kind"  # always "wallet"
CREATED = "created"  # when the wallet was made (ms)
WALLET_ID = "wallet_id"
PLAN = "plan"
ALLOWANCE = "allow"
ORG = "org"
BYPASS_FLAG = "bp"
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
        KIND, CREATED, WALLET_ID, PLAN, ALLOWANCE, ORG, BYPASS_FLAG, BYOK_MEMBERS, PENDING_PLAN,
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


def seq(item: Item) -> int:
    """How many ledger entries the wallet has posted (0 before its first)."""
    return int(item.get(SEQ, 0))


def posts(item: Item) -> list[Item]:
    """The postings of the latest write (:func:`posting` made them), for the projector."""
    found: list[Item] = item.get(POSTS) or []
    return found


def overage(item: Item) -> bool:
    return bool(item.get(OVERAGE, False))


def bypass(item: Item) -> bool:
    return bool(item.get(BYPASS_FLAG, False))


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


# Stored form of a threshold in ``alr``: one letter per type keeps the hot item small.
_THRESHOLD_CODES: dict[str, str] = {
    "consumed_percent": "c",
    "remaining_percent": "r",
    "remaining_credits": "a",
}
_THRESHOLD_TYPES: dict[str, ThresholdType] = {
    "c": "consumed_percent",
    "r": "remaining_percent",
    "a": "remaining_credits",
}


def threshold_items(ts: Sequence[Threshold]) -> list[Item]:
    """The stored form of ``ts`` for the wallet's ``alr`` attribute."""
    return [{"t": _THRESHOLD_CODES[t.type], "v": t.value} for t in ts]


def alert_thresholds(item: Item) -> tuple[Threshold, ...] | None:
    """The thresholds the owner chose (``alr``); None: none chosen (the defaults apply),
    empty: alerts off."""
    stored = item.get(ALERT_THRESHOLDS)
    if stored is None:
        return None
    return tuple(
        Threshold(_THRESHOLD_TYPES[str(entry["t"])], Decimal(entry["v"])) for entry in stored
    )


def _amount(item: Item, name: str) -> Decimal:
    value = item.get(name)
    return ZERO if value is None else Decimal(value)


def alert_facts(item: Item) -> WalletFacts:
    """What the alert rules (:mod:`credit_meter.core.alerts`) read of a wallet image; stream
    images and test images may lack amounts, which count as 0."""
    return WalletFacts(
        wallet_id=str(item[WALLET_ID]),
        plan=item.get(PLAN),
        period_start=_amount(item, PERIOD_START),
        period_end=_amount(item, PERIOD_END),
        balance=_amount(item, BALANCE),
        available=_amount(item, AVAILABLE),
        used=_amount(item, USED),
        allowance=_amount(item, ALLOWANCE),
        overage=bool(item.get(OVERAGE)),
        thresholds=alert_thresholds(item),
        limit=limit(item),
        limit_alert=limit_alert(item),
        limit_room=limit_room(item),
        limit_hit=limit_hit(item),
        budgets=tuple(
            BudgetFacts(
                tag=tag,
                member_id=entry.get(BUDGET_MEMBER),
                cap=budget_cap(entry),
                used=_amount(entry, BUDGET_USED),
                hit=budget_hit(entry),
            )
            for tag, entry in (item.get(MEMBER_BUDGETS) or {}).items()
        ),
    )


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
        state=alerts.wallet_state(alert_facts(item)),
        alert_threshold=limit_alert(item),
        allowed_limit=lim,
        limit_remaining=None if lim is None or room is None else max(Decimal(0), room),
        org_id=org(item),
        bypass=bypass(item),
    )


# -- update expressions ----------------------------------------------------------------------
# Each builder below is one conditional write of the wallet; docs/data-model.md ("Writes and
# the conditions that guard them") says why each condition makes its write safe under races.


@dataclass(frozen=True, slots=True)
class DebitTerms:
    """What a debit's write assumes without reading the wallet: the member (``tag`` is the
    member's budget tag), whether the member has a budget, and the pricing mode (None for
    credits, ``byok``, ``bypass``). The write's condition checks each assumption."""

    member_id: str | None = None
    tag: str | None = None
    budgeted: bool = False
    mode: str | None = None

    def free(self, credits: Decimal) -> bool:
        """Costs nothing because of its mode: nothing is taken, so nothing is tested."""
        return self.mode is not None and credits == ZERO


def _can_debit(amount: str, values: Item, terms: DebitTerms, credits: Decimal) -> str:
    """The part of a debit's condition that protects the wallet: enough available (or overage
    allowed) and room under the spending limit (``lrem``, absent only on wallets older than
    limits). ``amount`` is the value name of the credits asked for."""
    if terms.free(credits):
        return "attribute_exists(pk)"
    values[":overage"] = True
    return (
        f"(avail >= {amount} OR ovr = :overage) "
        f"AND (lrem >= {amount} OR attribute_not_exists(lrem))"
    )


def _budget_debit(
    terms: DebitTerms, names: dict[str, str], amount: str, credits: Decimal
) -> tuple[str, str]:
    """The SET clause and condition a member's debit adds: with a budget, its room goes down
    in the same write and must suffice (``mb.<tag>.c`` absent: no cap, usage still counted);
    without one, the condition makes sure there is still none (else the write is refused and
    made again the other way). A free debit does not test the room (an overspent budget
    refuses nothing free)."""
    if terms.tag is None:
        return "", ""
    names["#m"] = terms.tag
    if not terms.budgeted:
        return "", " AND attribute_not_exists(mb.#m)"
    if terms.free(credits):
        return f", mb.#m.r = mb.#m.r - {amount}", " AND attribute_exists(mb.#m)"
    return (
        f", mb.#m.r = mb.#m.r - {amount}",
        f" AND attribute_exists(mb.#m) AND (attribute_not_exists(mb.#m.c) OR mb.#m.r >= {amount})",
    )


def _mode_condition(terms: DebitTerms, values: Item) -> str:
    """The part of a debit's condition that checks its pricing mode is still the wallet's."""
    if terms.mode == BYPASS:
        return " AND attribute_exists(bp)"
    clause = " AND attribute_not_exists(bp)"
    if terms.member_id is None:
        return clause
    values[":mid"] = terms.member_id
    if terms.mode == BYOK:
        return f"{clause} AND contains(ky, :mid)"
    return f"{clause} AND NOT contains(ky, :mid)"


def new_hold(
    credits: Decimal, expires_at: int, feature: str, digest: str, terms: DebitTerms
) -> Item:
    """An open hold's entry (``hd.<key>``)."""
    hold: Item = {
        HOLD_CREDITS: credits,
        HOLD_EXPIRES_AT: expires_at,
        HOLD_FEATURE: feature,
        HOLD_DIGEST: digest,
    }
    if terms.member_id is not None:
        hold[HOLD_MEMBER] = terms.member_id
    if terms.mode is not None:
        hold[HOLD_MODE] = terms.mode
    if terms.budgeted:
        hold[HOLD_BUDGET_TAG] = terms.tag
    return hold


def reserve_update(
    wallet_id: str, hold_key: str, hold: Item, terms: DebitTerms, max_open: int, sweep_at: int
) -> Update:
    """Open a hold: availability, the spending limit and the member's budget are tested in
    this write's condition, so concurrent reserves cannot pass any of them. ``sweep_at`` is
    kept when the wallet is already due for the sweeper."""
    credits = hold_credits(hold)
    names = {"#k": hold_key}
    values: Item = {
        ":c": credits,
        ":max_open": max_open,
        ":sweep": sweep_at,
        ":shard": sweep_shard(wallet_id),
        ":unl": NO_LIMIT_ROOM,
    }
    budget_set, budget_condition = _budget_debit(terms, names, ":c", credits)
    values[":hold"] = hold
    mode_condition = _mode_condition(terms, values)
    return Update(
        key=key(wallet_id),
        expression=(
            "SET hd.#k = :hold, held = held + :c, avail = avail - :c, "
            f"lrem = if_not_exists(lrem, :unl) - :c{budget_set}, "
            "sweep_at = if_not_exists(sweep_at, :sweep), "
            "sweep_shard = if_not_exists(sweep_shard, :shard) REMOVE posts"
        ),
        condition=(
            f"attribute_exists(pk) AND {_can_debit(':c', values, terms, credits)}"
            f"{budget_condition}{mode_condition} "
            "AND attribute_not_exists(hd.#k) AND size(hd) < :max_open"
        ),
        names=names,
        values=values,
    )


def charge_update(wallet_id: str, amount: Decimal, post: Item, terms: DebitTerms) -> Update:
    """A one-shot debit, tested like a hold (availability, limit, budget, mode)."""
    names: dict[str, str] = {}
    budget_set, budget_condition = _budget_debit(terms, names, ":a", amount)
    if terms.budgeted:
        budget_set += ", mb.#m.u = mb.#m.u + :a"
    values: Item = {":a": amount, ":one": 1, ":posts": [post], ":unl": NO_LIMIT_ROOM}
    mode_condition = _mode_condition(terms, values)
    return Update(
        key=key(wallet_id),
        expression=(
            "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, "
            "used = used + :a, seq = seq + :one, posts = :posts, "
            f"lrem = if_not_exists(lrem, :unl) - :a{budget_set}"
        ),
        condition=(
            f"attribute_exists(pk) AND {_can_debit(':a', values, terms, amount)}"
            f"{budget_condition}{mode_condition}"
        ),
        names=names,
        values=values,
    )


def hold_end_update(
    wallet_id: str,
    hold_key: str,
    held_credits: Decimal,
    charged: Decimal,
    post: Item,
    tag: str | None,
    mode: str | None,
) -> Update:
    """Commit or release a hold: it leaves the wallet exactly once, conditioned on the held
    amount, budget tag and mode the reservation id claims (a forged id is refused)."""
    names = {"#k": hold_key}
    values: Item = {
        ":h": held_credits,
        ":r": held_credits - charged,
        ":a": charged,
        ":one": 1,
        ":posts": [post],
        ":unl": NO_LIMIT_ROOM,
    }
    if tag is None:
        budget_set, condition = "", "hd.#k.c = :h AND attribute_not_exists(hd.#k.b)"
    else:  # the member's room gets back what was held and not charged
        names["#m"] = tag
        values[":tag"] = tag
        budget_set = ", mb.#m.r = mb.#m.r + :r, mb.#m.u = mb.#m.u + :a"
        condition = "hd.#k.c = :h AND hd.#k.b = :tag"
    if mode is None:
        condition += " AND attribute_not_exists(hd.#k.p)"
    else:
        values[":mode"] = mode
        condition += " AND hd.#k.p = :mode"
    return Update(
        key=key(wallet_id),
        expression=(
            "REMOVE hd.#k SET held = held - :h, avail = avail + :r, bal = bal - :a, "
            "drawn = drawn + :a, used = used + :a, seq = seq + :one, posts = :posts, "
            f"lrem = if_not_exists(lrem, :unl) + :r{budget_set}"
        ),
        condition=condition,
        names=names,
        values=values,
    )


def expiry_update(
    wallet_id: str,
    holds: dict[str, Item],
    batch: list[tuple[str, Item]],
    next_look: int,
    posts: list[Item],
) -> Update:
    """End ``batch`` (expired holds) as releases would, and reschedule the wallet's next
    sweep (the soonest remaining expiry, at the latest ``next_look``; off the sweep index
    when none is left and no hold opened since the read). Conditioned on every hold in the
    batch still being open as read."""
    ended = {k for k, _ in batch}
    remaining = [hold_expires_at(h) for k, h in holds.items() if k not in ended]
    names: dict[str, str] = {}
    values: Item = {}
    conditions = []
    for i, (hold_key, hold) in enumerate(batch):
        names[f"#k{i}"] = hold_key
        values[f":c{i}"] = hold_credits(hold)
        conditions.append(f"hd.#k{i}.c = :c{i}")
    if remaining:
        values[":next"] = min([*remaining, next_look])
    else:
        conditions.append("size(hd) = :open")
        values[":open"] = len(batch)
    if not batch:
        return Update(
            key=key(wallet_id),
            expression="SET sweep_at = :next" if remaining else "REMOVE sweep_at",
            condition=" AND ".join(["attribute_exists(pk)", *conditions]),
            values=values,
        )
    released = sum((hold_credits(h) for _, h in batch), ZERO)
    values.update({":r": released, ":n": len(batch), ":posts": posts, ":unl": NO_LIMIT_ROOM})
    budget_sets = _expired_budgets(batch, names, values, conditions)
    set_part = "sweep_at = :next, " if remaining else ""
    removes = ", ".join(f"hd.#k{i}" for i in range(len(batch)))
    return Update(
        key=key(wallet_id),
        expression=(
            f"SET {set_part}held = held - :r, avail = avail + :r, seq = seq + :n, "
            f"posts = :posts, lrem = if_not_exists(lrem, :unl) + :r{budget_sets} "
            f"REMOVE {removes}{'' if remaining else ', sweep_at'}"
        ),
        condition=" AND ".join(conditions),
        names=names,
        values=values,
    )


def _expired_budgets(
    batch: list[tuple[str, Item]], names: dict[str, str], values: Item, conditions: list[str]
) -> str:
    """Holds counted against a member's budget give the member's room back too."""
    by_member: dict[str, Decimal] = {}
    for i, (_, hold) in enumerate(batch):
        tag = hold_budget_tag(hold)
        if tag is not None:
            by_member[tag] = by_member.get(tag, ZERO) + hold_credits(hold)
            conditions.append(f"hd.#k{i}.b = :b{i}")
            values[f":b{i}"] = tag
    budget_sets = ""
    for j, (tag, credits) in enumerate(by_member.items()):
        names[f"#m{j}"] = tag
        values[f":m{j}"] = credits
        budget_sets += f", mb.#m{j}.r = mb.#m{j}.r + :m{j}"
    return budget_sets


def refusal_mark_update(wallet_id: str, period: Decimal, tag: str | None) -> Update:
    """Note that the spending limit (``tag`` None) or a member's budget refused a debit in
    the period starting ``period``: written once per period, for the ``limit.reached`` alert."""
    if tag is not None:
        return Update(
            key(wallet_id),
            "SET mb.#m.h = :ps",
            "ps = :ps AND attribute_exists(mb.#m) "
            "AND (attribute_not_exists(mb.#m.h) OR mb.#m.h <> :ps)",
            names={"#m": tag},
            values={":ps": period},
        )
    return Update(
        key(wallet_id),
        "SET lhit = :ps",
        "ps = :ps AND (attribute_not_exists(lhit) OR lhit <> :ps)",
        values={":ps": period},
    )


def room_under(limit_value: Decimal | None) -> Decimal:
    """What ``lrem`` counts down from: the limit, or without one 10¹⁵."""
    return NO_LIMIT_ROOM if limit_value is None else limit_value


def limits_update(
    wallet_id: str, item: Item, new_limit: Decimal | None, new_alert: Decimal | None
) -> Update:
    """Set (None: remove) the spending limit and its alert threshold, conditioned on the
    limit as read in ``item``. The room moves by the change of limit (relative: debits
    landing meanwhile stay counted). A room that does not match what the wallet used and
    holds (a wallet written before limits existed) is set outright instead, conditioned on
    both as read. A changed limit forgets that the old one refused a debit (``lhit``):
    reaching the new one fires ``limit.reached`` again."""
    old = limit(item)
    spent = used(item) + held(item)
    room = limit_room(item)
    values: Item = {}
    if room is not None and room == room_under(old) - spent:
        sets, guard = ["lrem = lrem + :shift"], ""
        values[":shift"] = room_under(new_limit) - room_under(old)
    else:
        sets, guard = ["lrem = :room"], " AND used = :u AND held = :h"
        values.update({":room": room_under(new_limit) - spent, ":u": used(item), ":h": held(item)})
    removes = ["lhit"]
    for name, value in (("lim", new_limit), ("lat", new_alert)):
        if value is None:
            removes.append(name)
        else:
            sets.append(f"{name} = :{name}")
            values[f":{name}"] = value
    if old is None:
        condition = "attribute_exists(pk) AND attribute_not_exists(lim)" + guard
    else:
        condition = "lim = :old" + guard
        values[":old"] = old
    expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
    return Update(key(wallet_id), expression, condition, values=values)


def budget_add_update(
    wallet_id: str, tag: str, member_id: str, cap: Decimal, first: bool
) -> Update:
    """A new member budget, its room the whole cap; ``first``: the wallet's first makes the
    map. At most :data:`MAX_MEMBER_BUDGETS`."""
    entry = {BUDGET_MEMBER: member_id, BUDGET_CAP: cap, BUDGET_ROOM: cap, BUDGET_USED: ZERO}
    if first:
        return Update(
            key(wallet_id),
            "SET mb = :mb",
            "attribute_exists(pk) AND attribute_not_exists(mb)",
            values={":mb": {tag: entry}},
        )
    return Update(
        key(wallet_id),
        "SET mb.#t = :e",
        "attribute_exists(mb) AND attribute_not_exists(mb.#t) AND size(mb) < :max",
        names={"#t": tag},
        values={":e": entry, ":max": MAX_MEMBER_BUDGETS},
    )


def budget_change_update(wallet_id: str, tag: str, entry: Item, cap: Decimal | None) -> Update:
    """Change (None: remove) a member's cap, conditioned on the cap as read in ``entry``. The
    room moves by the change of cap (no cap counts as 0: the room then tracks what the member
    used and holds, below zero), so debits landing meanwhile stay. A changed cap forgets that
    the old one refused a debit (``h``), as for limits."""
    old = budget_cap(entry)
    values: Item = {":shift": (cap or ZERO) - (old or ZERO)}
    expression = "SET mb.#t.r = mb.#t.r + :shift"
    if cap is None:
        expression += " REMOVE mb.#t.c, mb.#t.h"
    else:
        expression += ", mb.#t.c = :cap REMOVE mb.#t.h"
        values[":cap"] = cap
    if old is None:
        condition = "attribute_exists(mb.#t) AND attribute_not_exists(mb.#t.c)"
    else:
        condition = "mb.#t.c = :old"
        values[":old"] = old
    return Update(key(wallet_id), expression, condition, names={"#t": tag}, values=values)
