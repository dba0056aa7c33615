"""Typed readers of the wallet item, the get-or-404 read, and the mapping of its nested
entries (buckets, postings, alert thresholds) to domain values."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from credit_meter.core import alerts, wallets
from credit_meter.core.alerts import BudgetFacts, Threshold, ThresholdType, WalletFacts
from credit_meter.core.errors import no_wallet
from credit_meter.core.wallets import Bucket, WalletView
from credit_meter.storage.store import Store
from credit_meter.storage.wallet_record.names import (
    ALERT_THRESHOLDS,
    ALLOWANCE,
    ANCHOR_DAY,
    AVAILABLE,
    BALANCE,
    BUCKETS,
    BUDGET_CAP,
    BUDGET_HIT,
    BUDGET_MEMBER,
    BUDGET_ROOM,
    BUDGET_USED,
    BYOK_MEMBERS,
    BYPASS_FLAG,
    DRAWN,
    HELD,
    HOLD_BUDGET_TAG,
    HOLD_CREDITS,
    HOLD_DIGEST,
    HOLD_EXPIRES_AT,
    HOLD_MODE,
    HOLDS,
    LIMIT,
    LIMIT_ALERT,
    LIMIT_HIT,
    LIMIT_ROOM,
    MEMBER_BUDGETS,
    ORG,
    OVERAGE,
    PENDING_PLAN,
    PERIOD_END,
    PERIOD_START,
    PLAN,
    POSTS,
    SEQ,
    USED,
    WALLET_ID,
    ZERO,
    Item,
    key,
)


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
