"""The update expressions every use case writes the wallet item with."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from credit_meter.core.catalog import BYOK, BYPASS
from credit_meter.storage.store import Update
from credit_meter.storage.wallet_record.names import (
    BUDGET_CAP,
    BUDGET_MEMBER,
    BUDGET_ROOM,
    BUDGET_USED,
    HOLD_BUDGET_TAG,
    HOLD_CREDITS,
    HOLD_DIGEST,
    HOLD_EXPIRES_AT,
    HOLD_FEATURE,
    HOLD_MEMBER,
    HOLD_MODE,
    MAX_MEMBER_BUDGETS,
    NO_LIMIT_ROOM,
    ZERO,
    Item,
    key,
    sweep_shard,
)
from credit_meter.storage.wallet_record.readers import (
    budget_cap,
    held,
    hold_budget_tag,
    hold_credits,
    hold_expires_at,
    limit,
    limit_room,
    used,
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


def alert_thresholds_update(wallet_id: str, stored: list[Item] | None) -> Update:
    """Set the owner's alert thresholds (``stored``: :func:`threshold_items`), or with None
    remove them (the defaults apply again)."""
    if stored is None:
        return Update(key(wallet_id), "REMOVE alr", "attribute_exists(pk)")
    return Update(key(wallet_id), "SET alr = :alr", "attribute_exists(pk)", values={":alr": stored})
