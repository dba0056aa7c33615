"""The wallet's writes outside the hot path: the bucket change every grant-like write makes,
the guards billing adds to it, and the plain lifecycle updates (organisation, bypass, pending
plan, due date, debits that are not metering, BYOK members, auto top-up state).

Every expression is spelt from :mod:`.names`, so the use cases name no stored attribute; the
conditions are the ones ``docs/data-model.md`` ("Writes and the conditions that guard them")
lists, each one what makes its write safe under races.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter.core import periods
from credit_meter.core.wallets import Bucket
from credit_meter.storage.store import Update
from credit_meter.storage.wallet_record.names import (
    AUTO_TOPUP_CROSSING,
    AUTO_TOPUP_RETRY_AFTER,
    AUTO_TOPUP_STATE,
    AUTO_TOPUP_THRESHOLD,
    AVAILABLE,
    BALANCE,
    BUCKETS,
    BUCKETS_VERSION,
    BUDGET_ROOM,
    BUDGET_USED,
    BYOK_MEMBERS,
    BYPASS_FLAG,
    DRAWN,
    DUE_AT,
    DUE_SHARD,
    LIMIT_ROOM,
    MEMBER_BUDGETS,
    NO_LIMIT_ROOM,
    ORG,
    PENDING_ALLOWANCE,
    PENDING_PLAN,
    PERIOD_END,
    POSTS,
    REFERRED_BY,
    SEQ,
    USED,
    Item,
    due_shard,
    key,
)
from credit_meter.storage.wallet_record.readers import bucket_item

# -- the bucket change -------------------------------------------------------------------------


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


def bucket_update(wallet_id: str, wallet: Item, change: BucketChange) -> Update:
    """The conditional write of ``change`` to the wallet as read (its ``bver``). Amounts are
    relative to what is stored, so metering writes landing meanwhile are neither blocked nor
    lost."""
    names = {f"#s{i}": name for i, name in enumerate(change.sets)} | change.names
    values: dict[str, Any] = {
        ":bk": [bucket_item(b) for b in change.buckets],
        ":one": 1,
        ":dd": change.drawn_delta,
        ":g": change.balance_delta,
        ":n": len(change.posts),
        ":posts": change.posts,
        ":due": periods.due_at(change.buckets, change.period_end),
        ":dsh": due_shard(wallet_id),
        ":bver": wallet[BUCKETS_VERSION],
        **{f":s{i}": value for i, value in enumerate(change.sets.values())},
        **change.values,
    }
    sets = [
        f"{BUCKETS} = :bk",
        f"{BUCKETS_VERSION} = {BUCKETS_VERSION} + :one",
        f"{DRAWN} = {DRAWN} + :dd",
        f"{BALANCE} = {BALANCE} + :g",
        f"{AVAILABLE} = {AVAILABLE} + :g",
        f"{SEQ} = {SEQ} + :n",
        f"{POSTS} = :posts",
        f"{DUE_AT} = :due",
        f"{DUE_SHARD} = :dsh",
        *(f"#s{i} = :s{i}" for i in range(len(change.sets))),
        *change.clauses,
    ]
    expression = "SET " + ", ".join(sets)
    if change.removes:
        names.update({f"#r{i}": name for i, name in enumerate(change.removes)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(change.removes)))
    condition = f"{BUCKETS_VERSION} = :bver"
    if change.condition:
        condition += f" AND {change.condition}"
    return Update(
        key=key(wallet_id), expression=expression, condition=condition, names=names, values=values
    )


def void_guard(amount: Decimal, drawn_before: Decimal) -> tuple[str, Item]:
    """A void's extra condition and its values: the credits are still available (no open
    hold uses them) and nothing was drawn since the read."""
    return (
        f"{AVAILABLE} >= :amt AND {DRAWN} <= :before",
        {":amt": amount, ":before": drawn_before},
    )


def not_referred_guard() -> str:
    """A referral's condition on the referred wallet: referred once only."""
    return f"attribute_not_exists({REFERRED_BY})"


def roll_guard(period_end: int, floor: Decimal | None) -> tuple[str, Item]:
    """A period roll's extra condition: the period is still the one read, and with ``floor``
    (what the roll expires) still that much available, else a debit or hold since the read
    used those credits and the roll is computed again."""
    condition = f"{PERIOD_END} = :pe"
    values: Item = {":pe": period_end}
    if floor is not None:
        condition += f" AND {AVAILABLE} >= :floor"
        values[":floor"] = floor
    return condition, values


def period_reset_clauses(
    used: Decimal, budgets_used: Iterable[tuple[str, Decimal]]
) -> tuple[tuple[str, ...], Item, dict[str, str]]:
    """The SET clauses (with values and names) that start a new period's usage: relative, so
    usage committed meanwhile counts in the new period; the limit's room and each member
    budget's room get back what the ended period used. ``budgets_used``: (tag, used) sorted."""
    clauses: tuple[str, ...] = (
        f"{USED} = {USED} - :used",
        f"{LIMIT_ROOM} = if_not_exists({LIMIT_ROOM}, :unl) + :used",
    )
    values: Item = {":used": used, ":unl": NO_LIMIT_ROOM}
    names: dict[str, str] = {}
    for i, (tag, spent) in enumerate(budgets_used):
        if spent != 0:
            names[f"#m{i}"] = tag
            values[f":u{i}"] = spent
            room = f"{MEMBER_BUDGETS}.#m{i}.{BUDGET_ROOM}"
            count = f"{MEMBER_BUDGETS}.#m{i}.{BUDGET_USED}"
            clauses += (f"{room} = {room} + :u{i}", f"{count} = {count} - :u{i}")
    return clauses, values, names


# -- plain lifecycle updates -------------------------------------------------------------------


def _plain_debit(wallet_id: str, amount: Decimal, post: Item, condition: str) -> Update:
    return Update(
        key=key(wallet_id),
        expression=(
            f"SET {BALANCE} = {BALANCE} - :a, {AVAILABLE} = {AVAILABLE} - :a, "
            f"{DRAWN} = {DRAWN} + :a, {SEQ} = {SEQ} + :one, {POSTS} = :posts"
        ),
        condition=condition,
        values={":a": amount, ":one": 1, ":posts": [post]},
    )


def adjustment_debit_update(wallet_id: str, amount: Decimal, post: Item) -> Update:
    """A negative manual adjustment: it may take the balance below zero, so only the wallet's
    existence is tested."""
    return _plain_debit(wallet_id, amount, post, "attribute_exists(pk)")


def transfer_debit_update(wallet_id: str, amount: Decimal, post: Item) -> Update:
    """The sending side of a transfer: never more than the wallet has available."""
    return _plain_debit(wallet_id, amount, post, f"attribute_exists(pk) AND {AVAILABLE} >= :a")


def join_org_update(wallet_id: str, org_id: str) -> Update:
    """Put the wallet in an organisation: once, never into another one."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {ORG} = :org",
        condition=f"attribute_exists(pk) AND attribute_not_exists({ORG})",
        values={":org": org_id},
    )


def bypass_update(wallet_id: str, enabled: bool) -> Update:
    """Turn bypass mode on or off on an existing wallet."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {BYPASS_FLAG} = :on" if enabled else f"REMOVE {BYPASS_FLAG}",
        condition="attribute_exists(pk)",
        values={":on": True} if enabled else {},
    )


def pending_plan_clear_update(wallet_id: str, version: Any) -> Update:
    """Drop a plan change due next period (back to the current plan), as a bucket change
    would: ``bver`` moves so a reset that read the wallet before reads it again."""
    return Update(
        key=key(wallet_id),
        expression=(
            f"SET {BUCKETS_VERSION} = {BUCKETS_VERSION} + :one "
            f"REMOVE {PENDING_PLAN}, {PENDING_ALLOWANCE}, {POSTS}"
        ),
        condition=f"{BUCKETS_VERSION} = :bver",
        values={":bver": version, ":one": 1},
    )


def pending_plan_update(wallet_id: str, version: Any, plan: str, allow: Decimal) -> Update:
    """A downgrade (or sideways move) due next period; ``bver`` moves too: a reset that read
    the wallet before this change must read it again, or it would start on the old plan."""
    return Update(
        key=key(wallet_id),
        expression=(
            f"SET {PENDING_PLAN} = :plan, {PENDING_ALLOWANCE} = :allow, "
            f"{BUCKETS_VERSION} = {BUCKETS_VERSION} + :one REMOVE {POSTS}"
        ),
        condition=f"{BUCKETS_VERSION} = :bver",
        values={":bver": version, ":one": 1, ":plan": plan, ":allow": allow},
    )


def reschedule_update(wallet_id: str, version: Any, due: int) -> Update:
    """Move the wallet's place on the due index (not due after all), guarded like a bucket
    change so a roll that changed the buckets meanwhile is not undone."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {DUE_AT} = :due, {DUE_SHARD} = :dsh REMOVE {POSTS}",
        condition=f"{BUCKETS_VERSION} = :bver",
        values={":due": due, ":dsh": due_shard(wallet_id), ":bver": version},
    )


def byok_member_update(wallet_id: str, user_id: str, present: bool) -> Update:
    """Add (``present``) or remove a member of the wallet's organisation in the set of those
    who bring their own provider key (:mod:`credit_meter.byok.keys` says why its order with
    the membership line cannot miss a key)."""
    return Update(
        key=key(wallet_id),
        expression=f"{'ADD' if present else 'DELETE'} #ky :u",
        # Never creates a wallet: ADD on a missing item would make a stub one.
        condition="attribute_exists(pk)",
        names={"#ky": BYOK_MEMBERS},
        values={":u": {user_id}},
        return_old=False,  # a refusal says enough; the wallet item is not wanted back
    )


# -- auto top-up state on the wallet -----------------------------------------------------------

_STATE, _CROSSING = AUTO_TOPUP_STATE, AUTO_TOPUP_CROSSING
_RETRY, _THRESHOLD = AUTO_TOPUP_RETRY_AFTER, AUTO_TOPUP_THRESHOLD


def auto_topup_settings_update(wallet_id: str, threshold: Decimal | None) -> Update:
    """The wallet's side of saving auto top-up settings (None: turned off); its condition is
    the wallet's existence. A state already there stays (a purchase on its way or a back-off
    must not look like a new crossing); turned off, only the threshold goes."""
    if threshold is None:
        return Update(key(wallet_id), f"REMOVE {_THRESHOLD}", "attribute_exists(pk)")
    return Update(
        key=key(wallet_id),
        expression=f"SET {_THRESHOLD} = :x, {_STATE} = if_not_exists({_STATE}, :armed), "
        f"{_CROSSING} = if_not_exists({_CROSSING}, :zero)",
        condition="attribute_exists(pk)",
        values={":x": threshold, ":armed": "armed", ":zero": 0},
    )


def auto_topup_rearm_update(wallet_id: str) -> Update:
    """A new card ends a back-off after a decline."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {_STATE} = :armed REMOVE {_RETRY}",
        condition=f"{_STATE} = :declined",
        values={":armed": "armed", ":declined": "declined"},
    )


def auto_topup_state_update(wallet_id: str, crossing: int, seen: str, state: str) -> Update:
    """Move the state on from ``seen``, refused when it moved on meanwhile."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {_STATE} = :s REMOVE {_RETRY}",
        condition=f"{_STATE} = :seen AND {_CROSSING} = :n",
        values={":s": state, ":seen": seen, ":n": crossing},
    )


def auto_topup_fire_update(wallet_id: str, crossing: int, seen: str) -> Update:
    """Claim the next crossing number, on condition the wallet is still below the threshold
    now, not only in the (maybe late) stream record."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {_STATE} = :fired, {_CROSSING} = :next REMOVE {_RETRY}",
        condition=f"{_STATE} = :seen AND {_CROSSING} = :n AND {AVAILABLE} < {_THRESHOLD}",
        values={":fired": "fired", ":seen": seen, ":n": crossing, ":next": crossing + 1},
    )


def auto_topup_declined_update(wallet_id: str, crossing: int, until: int) -> Update:
    """Back off after a decline until ``until``, if this crossing is still the fired one."""
    return Update(
        key=key(wallet_id),
        expression=f"SET {_STATE} = :d, {_RETRY} = :until",
        condition=f"{_CROSSING} = :n AND {_STATE} = :fired",
        values={":d": "declined", ":until": until, ":n": crossing, ":fired": "fired"},
    )
