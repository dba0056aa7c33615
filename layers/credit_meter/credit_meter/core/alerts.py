"""Credit alerts: which thresholds a wallet write crossed (docs/events.md).

Pure: no I/O and nothing heavier than ``decimal`` and ``hashlib`` to import, so the metering
API can read and validate thresholds without paying for the publishing side
(:mod:`credit_meter.controls.notify`).

A condition *fires* when it is false on the stream record's old image (judged with that image's
own configuration) and true on the new one: once per crossing, re-armed when the condition
turns false again (a reset brings ``used`` back to 0, a top-up lifts the balance). Remaining
thresholds look at the balance, not ``avail``: holds open and close on every metered action
and must not make alerts flap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from credit_meter.core.clock import iso, now_ts
from credit_meter.core.money import fmt

ThresholdType = Literal["consumed_percent", "remaining_percent", "remaining_credits"]
WalletState = Literal["ok", "alerting", "depleted", "capped"]

# Event names: the EventBridge detail-type and the SNS ``event_type`` attribute.
THRESHOLD_CROSSED = "credits.threshold_crossed"
DEPLETED = "credits.depleted"
RESTORED = "credits.restored"
LIMIT_REACHED = "limit.reached"
EVENT_TYPES = (THRESHOLD_CROSSED, DEPLETED, RESTORED, LIMIT_REACHED)

_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Threshold:
    type: ThresholdType
    value: Decimal

    @property
    def key(self) -> str:
        """Identifies the threshold across images: its type and value."""
        return f"{self.type}:{fmt(self.value)}"


DEFAULT_THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("consumed_percent", Decimal(75)),
    Threshold("consumed_percent", Decimal(90)),
    Threshold("consumed_percent", Decimal(100)),
)
MAX_THRESHOLDS = 10


@dataclass(frozen=True, slots=True)
class BudgetFacts:
    """A member budget as the rules read it. ``hit``: the start of the period in which the
    budget first refused a debit, if it did."""

    tag: str
    member_id: str | None
    cap: Decimal | None
    used: Decimal
    hit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class WalletFacts:
    """What the alert rules read of one wallet image (built from the stored item by
    :func:`credit_meter.storage.wallet_record.alert_facts`; absent amounts count as 0).
    ``thresholds`` None: the owner chose none, the defaults apply (empty: alerts off)."""

    wallet_id: str
    plan: str | None = None
    period_start: Decimal = _ZERO
    period_end: Decimal = _ZERO
    balance: Decimal = _ZERO
    available: Decimal = _ZERO
    used: Decimal = _ZERO
    allowance: Decimal = _ZERO
    overage: bool = False
    thresholds: tuple[Threshold, ...] | None = None
    limit: Decimal | None = None
    limit_alert: Decimal | None = None
    limit_room: Decimal | None = None
    limit_hit: Decimal | None = None
    budgets: tuple[BudgetFacts, ...] = ()


def thresholds_of(wallet: WalletFacts) -> tuple[Threshold, ...]:
    """The wallet's thresholds, else the defaults."""
    return DEFAULT_THRESHOLDS if wallet.thresholds is None else wallet.thresholds


def is_crossed(wallet: WalletFacts, t: Threshold) -> bool:
    """Whether the wallet is past threshold ``t`` (percentages need an allowance above 0)."""
    allowance, balance = wallet.allowance, wallet.balance
    if t.type == "remaining_credits":
        return balance <= t.value
    if allowance <= 0:
        return False
    if t.type == "consumed_percent":
        return wallet.used * _HUNDRED >= t.value * allowance
    return balance * _HUNDRED <= t.value * allowance


def _spend_crossed(wallet: WalletFacts) -> bool:
    lat = wallet.limit_alert
    return lat is not None and wallet.used >= lat


def _refused_this_period(marker: Decimal | None, wallet: WalletFacts) -> bool:
    """A limit's ``hit`` marker (the start of the period in which it first refused a debit)
    names the current period."""
    return marker is not None and marker == wallet.period_start


def _capped(wallet: WalletFacts) -> bool:
    return wallet.limit is not None and wallet.used >= wallet.limit


def _limit_reached(wallet: WalletFacts) -> bool:
    """What ``limit.reached`` reports: used up to the limit, or the limit refused a debit this
    period (a refused debit writes nothing else, so its mark is what tells the stream)."""
    return _capped(wallet) or (
        wallet.limit is not None and _refused_this_period(wallet.limit_hit, wallet)
    )


def _budget_reached(wallet: WalletFacts, budget: BudgetFacts) -> bool:
    return budget.cap is not None and (
        budget.used >= budget.cap or _refused_this_period(budget.hit, wallet)
    )


def _depleted(wallet: WalletFacts) -> bool:
    return wallet.balance <= 0


def wallet_state(wallet: WalletFacts) -> WalletState:
    """``capped`` (spending limit reached, or open holds fill what is left of it: new holds
    are refused), ``depleted`` (new holds are refused, or nothing is left), ``alerting`` (a
    threshold or the spending alert is crossed) or ``ok``."""
    room = wallet.limit_room
    if _capped(wallet) or (wallet.limit is not None and room is not None and room <= 0):
        return "capped"
    if (wallet.available <= 0 and not wallet.overage) or _depleted(wallet):
        return "depleted"
    if _spend_crossed(wallet) or any(is_crossed(wallet, t) for t in thresholds_of(wallet)):
        return "alerting"
    return "ok"


@dataclass(frozen=True, slots=True)
class Alert:
    """One crossing, ready to publish. ``id`` is stable across replays of the stream record
    (it is the publishing's idempotency key); ``detail`` is the event's payload."""

    id: str
    detail_type: str
    wallet_id: str
    key: str  # what crossed: a threshold's key, "spend:<v>", "limit:wallet", "limit:member:<tag>"
    detail: dict[str, Any] = field(compare=False, hash=False)


def alert_id(wallet_id: str, record_id: str, detail_type: str, key: str) -> str:
    digest = hashlib.sha256(f"{wallet_id}\n{record_id}\n{detail_type}\n{key}".encode())
    return f"alr_{digest.hexdigest()[:32]}"


@dataclass(frozen=True, slots=True)
class _Condition:
    detail_type: str
    key: str
    extra: dict[str, Any]  # the detail fields particular to the condition


def _conditions(wallet: WalletFacts) -> dict[str, _Condition]:
    """Every condition that holds on this image, judged with its own configuration, by key."""
    held: dict[str, _Condition] = {}
    for t in thresholds_of(wallet):
        if is_crossed(wallet, t):
            held[t.key] = _Condition(
                THRESHOLD_CROSSED, t.key, {"threshold": {"type": t.type, "value": fmt(t.value)}}
            )
    if _spend_crossed(wallet):
        lat = fmt(wallet.limit_alert or _ZERO)
        key = f"spend:{lat}"
        held[key] = _Condition(
            THRESHOLD_CROSSED, key, {"threshold": {"type": "spend", "value": lat}}
        )
    if _limit_reached(wallet):
        held["limit:wallet"] = _Condition(LIMIT_REACHED, "limit:wallet", {"scope": "wallet"})
    for budget in sorted(wallet.budgets, key=lambda b: b.tag):
        if _budget_reached(wallet, budget):
            cap, used = budget.cap or _ZERO, budget.used
            key = f"limit:member:{budget.tag}"
            held[key] = _Condition(
                LIMIT_REACHED,
                key,
                {
                    "scope": "member",
                    "member_id": budget.member_id,
                    "member_budget": {"cap": fmt(cap), "used": fmt(used)},
                },
            )
    if _depleted(wallet):
        held["depleted"] = _Condition(DEPLETED, "depleted", {})
    return held


def _detail(
    wallet: WalletFacts, condition: _Condition, alert: str, occurred_at: float
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "id": alert,
        "wallet_id": wallet.wallet_id,
        "plan": wallet.plan,
        "period": {"start": iso(float(wallet.period_start)), "end": iso(float(wallet.period_end))},
        "occurred_at": iso(occurred_at),
        "state": wallet_state(wallet),
        "balance": fmt(wallet.balance),
        "available": fmt(wallet.available),
        "used": fmt(wallet.used),
        "allowance": fmt(wallet.allowance),
    }
    if wallet.limit is not None:
        detail["limit"] = fmt(wallet.limit)
    detail.update(condition.extra)
    return detail


def crossings(
    old: WalletFacts | None,
    new: WalletFacts,
    record_id: str,
    *,
    occurred_at: float | None = None,
) -> list[Alert]:
    """The alerts one wallet write fires: every condition that holds on ``new`` and did not on
    ``old`` (an insert, ``old`` None, had none), and ``credits.restored`` when the balance
    comes back above zero. ``record_id`` (the stream record's sequence number) makes the ids
    replay-stable; ``occurred_at`` (epoch s, the record's creation time; default now) goes in
    the detail."""
    at = now_ts() if occurred_at is None else occurred_at
    before = _conditions(old) if old is not None else {}
    after = _conditions(new)
    fired = [c for key, c in after.items() if key not in before]
    if "depleted" in before and "depleted" not in after:
        fired.append(_Condition(RESTORED, "restored", {}))
    wallet_id = new.wallet_id
    alerts = []
    for condition in fired:
        ident = alert_id(wallet_id, record_id, condition.detail_type, condition.key)
        alerts.append(
            Alert(
                id=ident,
                detail_type=condition.detail_type,
                wallet_id=wallet_id,
                key=condition.key,
                detail=_detail(new, condition, ident, at),
            )
        )
    return alerts
