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
from collections.abc import Mapping, Sequence
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

# Stored form (`alr` on the wallet item): one letter per type keeps the hot item small.
_CODES: dict[str, str] = {
    "consumed_percent": "c",
    "remaining_percent": "r",
    "remaining_credits": "a",
}
_TYPES: dict[str, ThresholdType] = {
    "c": "consumed_percent",
    "r": "remaining_percent",
    "a": "remaining_credits",
}
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


def thresholds_of(wallet: Mapping[str, Any]) -> tuple[Threshold, ...]:
    """The wallet's thresholds: its ``alr`` list, else the defaults; an empty ``alr`` means
    alerts are off."""
    stored = wallet.get("alr")
    if stored is None:
        return DEFAULT_THRESHOLDS
    return tuple(Threshold(_TYPES[str(entry["t"])], Decimal(entry["v"])) for entry in stored)


def threshold_items(ts: Sequence[Threshold]) -> list[dict[str, Any]]:
    """The stored form of ``ts`` for the wallet's ``alr`` attribute."""
    return [{"t": _CODES[t.type], "v": t.value} for t in ts]


def _num(wallet: Mapping[str, Any], name: str) -> Decimal:
    value = wallet.get(name)
    return _ZERO if value is None else Decimal(value)


def is_crossed(wallet: Mapping[str, Any], t: Threshold) -> bool:
    """Whether the wallet is past threshold ``t`` (percentages need an allowance above 0)."""
    allowance, balance = _num(wallet, "allow"), _num(wallet, "bal")
    if t.type == "remaining_credits":
        return balance <= t.value
    if allowance <= 0:
        return False
    if t.type == "consumed_percent":
        return _num(wallet, "used") * _HUNDRED >= t.value * allowance
    return balance * _HUNDRED <= t.value * allowance


def _spend_crossed(wallet: Mapping[str, Any]) -> bool:
    lat = wallet.get("lat")
    return lat is not None and _num(wallet, "used") >= Decimal(lat)


def _refused_this_period(marker: Any, wallet: Mapping[str, Any]) -> bool:
    """A limit's ``hit`` marker (the start of the period in which it first refused a debit)
    names the current period."""
    return marker is not None and Decimal(marker) == _num(wallet, "ps")


def _capped(wallet: Mapping[str, Any]) -> bool:
    lim = wallet.get("lim")
    return lim is not None and _num(wallet, "used") >= Decimal(lim)


def _limit_reached(wallet: Mapping[str, Any]) -> bool:
    """What ``limit.reached`` reports: used up to the limit, or the limit refused a debit this
    period (a refused debit writes nothing else, so its mark ``lhit`` is what tells the
    stream)."""
    return _capped(wallet) or ("lim" in wallet and _refused_this_period(wallet.get("lhit"), wallet))


def _budget_reached(wallet: Mapping[str, Any], budget: Mapping[str, Any]) -> bool:
    cap = budget.get("c")
    return cap is not None and (
        Decimal(budget.get("u") or 0) >= Decimal(cap)
        or _refused_this_period(budget.get("h"), wallet)
    )


def _depleted(wallet: Mapping[str, Any]) -> bool:
    return _num(wallet, "bal") <= 0


def wallet_state(wallet: Mapping[str, Any]) -> WalletState:
    """``capped`` (spending limit reached, or open holds fill what is left of it: new holds
    are refused), ``depleted`` (new holds are refused, or nothing is left), ``alerting`` (a
    threshold or the spending alert is crossed) or ``ok``."""
    room = wallet.get("lrem")
    if _capped(wallet) or ("lim" in wallet and room is not None and Decimal(room) <= 0):
        return "capped"
    if (_num(wallet, "avail") <= 0 and not wallet.get("ovr")) or _depleted(wallet):
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


def _conditions(wallet: Mapping[str, Any]) -> dict[str, _Condition]:
    """Every condition that holds on this image, judged with its own configuration, by key."""
    held: dict[str, _Condition] = {}
    for t in thresholds_of(wallet):
        if is_crossed(wallet, t):
            held[t.key] = _Condition(
                THRESHOLD_CROSSED, t.key, {"threshold": {"type": t.type, "value": fmt(t.value)}}
            )
    if _spend_crossed(wallet):
        lat = fmt(_num(wallet, "lat"))
        key = f"spend:{lat}"
        held[key] = _Condition(
            THRESHOLD_CROSSED, key, {"threshold": {"type": "spend", "value": lat}}
        )
    if _limit_reached(wallet):
        held["limit:wallet"] = _Condition(LIMIT_REACHED, "limit:wallet", {"scope": "wallet"})
    for tag, budget in sorted((wallet.get("mb") or {}).items()):
        if _budget_reached(wallet, budget):
            cap, used = budget["c"], Decimal(budget.get("u") or 0)
            key = f"limit:member:{tag}"
            held[key] = _Condition(
                LIMIT_REACHED,
                key,
                {
                    "scope": "member",
                    "member_id": budget.get("n"),
                    "member_budget": {"cap": fmt(Decimal(cap)), "used": fmt(used)},
                },
            )
    if _depleted(wallet):
        held["depleted"] = _Condition(DEPLETED, "depleted", {})
    return held


def _detail(
    wallet: Mapping[str, Any], condition: _Condition, alert: str, occurred_at: float
) -> dict[str, Any]:
    lim = wallet.get("lim")
    detail: dict[str, Any] = {
        "id": alert,
        "wallet_id": str(wallet["wallet_id"]),
        "plan": wallet.get("plan"),
        "period": {"start": iso(float(_num(wallet, "ps"))), "end": iso(float(_num(wallet, "pe")))},
        "occurred_at": iso(occurred_at),
        "state": wallet_state(wallet),
        "balance": fmt(_num(wallet, "bal")),
        "available": fmt(_num(wallet, "avail")),
        "used": fmt(_num(wallet, "used")),
        "allowance": fmt(_num(wallet, "allow")),
    }
    if lim is not None:
        detail["limit"] = fmt(Decimal(lim))
    detail.update(condition.extra)
    return detail


def crossings(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
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
    wallet_id = str(new["wallet_id"])
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
