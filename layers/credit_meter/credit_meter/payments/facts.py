"""A payment's facts, as Stripe's events tell them, and what follows from them: the credits it
should have in its wallet (``target_credits``), its status and its line in the payments list.
Pure functions: :mod:`credit_meter.payments.payments` stores the facts and moves the wallet.

Merging is order-free: an event delivered twice, late, out of order or concurrently leaves the
same facts, so the credits follow from the facts, not from the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit_meter.core.money import ZERO

_EVENTS_KEPT = 20
# State attribute <- Observation field, for what a payment's first word settles.
_FIRST_SAID = {
    "wallet_id": "wallet_id",
    "credits": "credits",
    "amount": "amount",
    "currency": "currency",
    "topup": "kind",  # checkout or auto_topup ("kind" names the item type in the table)
    "offer": "offer",
    "crossing": "crossing",
    "session_id": "session_id",
    "invoice_id": "invoice_id",
    "receipt_url": "receipt_url",
    "customer_id": "customer_id",
    "payment_method_id": "payment_method_id",
}
_ITEM_KEYS = frozenset({"pk", "sk", "kind", "ttl"})  # where a state is stored, not what it says

# Dispute statuses under which the disputed funds have left the merchant's balance.
_FUNDS_WITHDRAWN = frozenset({"needs_response", "under_review", "lost"})
# A dispute's final statuses; a late "created" never reopens one of these.
_DISPUTE_FINAL = frozenset({"won", "lost", "warning_closed", "prevented"})
# Shown as "disputed" in the payments list.
_DISPUTE_OPEN = frozenset(
    {"needs_response", "under_review", "warning_needs_response", "warning_under_review", "lost"}
)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one Stripe event says about one payment. Fields an event does not carry are None."""

    event_id: str
    event_type: str
    payment_id: str  # the PaymentIntent id
    at: int  # when Stripe created the event, epoch milliseconds
    created: int | None = None  # when the payment's object was created (not a dispute's), ms
    wallet_id: str | None = None
    credits: Decimal | None = None
    amount: int | None = None  # in the currency's smallest unit
    currency: str | None = None
    kind: str | None = None  # checkout, auto_topup
    offer: str | None = None
    crossing: int | None = None  # an auto top-up's crossing number
    session_id: str | None = None
    invoice_id: str | None = None
    receipt_url: str | None = None
    customer_id: str | None = None
    payment_method_id: str | None = None
    saves_method: bool = False  # the payer agreed to keep the card (setup_future_usage)
    paid: bool = False
    failed: bool = False
    failure: str | None = None
    refunded: int | None = None  # the cumulative amount refunded, smallest unit
    dispute_id: str | None = None
    dispute_status: str | None = None
    dispute_amount: int | None = None


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """One payment as the payments list shows it."""

    payment_id: str
    created_at: int  # epoch milliseconds
    amount: int | None
    currency: str | None
    credits: Decimal | None
    credited: Decimal
    status: str  # pending, paid, failed, refunded, disputed
    kind: str | None
    offer: str | None
    refunded_amount: int
    invoice_id: str | None
    receipt_url: str | None
    checkout_session_id: str | None


# -- the facts and what follows from them ------------------------------------------------------


def merge(state: dict[str, Any] | None, obs: Observation) -> dict[str, Any]:
    """The payment's state with one more event's facts; merging the same event again, or the
    events in any other order, gives the same facts."""
    new: dict[str, Any] = {"payment_id": obs.payment_id, "first_at": obs.created or obs.at}
    new.update({k: v for k, v in (state or {}).items() if k not in _ITEM_KEYS})
    # first_at (the payment's date, as the first event told it) never changes afterwards: the
    # payments-list line's key has it.
    for name, value in _FIRST_SAID.items():
        said = getattr(obs, value)
        if said is not None and new.get(name) is None:  # the first to say it wins
            new[name] = said
    new["paid"] = bool(new.get("paid")) or obs.paid
    if obs.paid and "paid_at" not in new:
        new["paid_at"] = obs.at
    new["failed"] = bool(new.get("failed")) or obs.failed
    if obs.failure and not new.get("failure"):
        new["failure"] = obs.failure
    if obs.refunded is not None:
        new["refunded"] = max(int(new.get("refunded", 0)), obs.refunded)
    if obs.dispute_id is not None and obs.dispute_status is not None:
        disputes = dict(new.get("disputes") or {})
        seen = disputes.get(obs.dispute_id)
        if seen is None or _newer_dispute_status(seen, obs):
            disputes[obs.dispute_id] = {
                "status": obs.dispute_status,
                "amount": obs.dispute_amount or (seen or {}).get("amount") or 0,
                "at": obs.at,
            }
        new["disputes"] = disputes
    events = [e for e in (new.get("events") or []) if e != obs.event_id]
    new["events"] = [*events, obs.event_id][-_EVENTS_KEPT:]
    return new


def _newer_dispute_status(seen: dict[str, Any], obs: Observation) -> bool:
    """Whether an event's dispute status replaces the one seen: a final status is kept; else
    the later event wins, and of two at the same second the one that withdraws the funds (the
    order in which events arrive says nothing: Stripe does not keep it)."""
    if seen["status"] in _DISPUTE_FINAL:
        return False
    if obs.dispute_status in _DISPUTE_FINAL:
        return True
    at = int(seen.get("at", 0))
    if obs.at != at:
        return obs.at > at
    return obs.dispute_status in _FUNDS_WITHDRAWN


def withdrawn(state: dict[str, Any]) -> int:
    """How much of the payment went back to the payer: refunds plus disputed funds."""
    disputed = sum(
        int(d.get("amount") or 0)
        for d in (state.get("disputes") or {}).values()
        if d["status"] in _FUNDS_WITHDRAWN
    )
    return int(state.get("refunded", 0)) + disputed


def target_credits(state: dict[str, Any]) -> Decimal:
    """The credits the payment should have in its wallet: all of them once paid, less the
    share of the amount that went back (rounded half-even to the credit's 6 decimals)."""
    credits = state.get("credits")
    if not state.get("paid") or credits is None or state.get("unknown_wallet"):
        return ZERO
    credits = Decimal(credits)
    amount = int(state.get("amount") or 0)
    back = withdrawn(state)
    if back <= 0:
        return credits
    if amount <= 0 or back >= amount:
        return ZERO
    taken = (credits * back / amount).quantize(Decimal("0.000001"), rounding="ROUND_HALF_EVEN")
    return credits - taken


def status_of(state: dict[str, Any]) -> str:
    if any(d["status"] in _DISPUTE_OPEN for d in (state.get("disputes") or {}).values()):
        return "disputed"
    if int(state.get("refunded", 0)) > 0:
        return "refunded"
    if state.get("paid"):
        return "paid"
    if state.get("failed"):
        return "failed"
    return "pending"


def line(state: dict[str, Any]) -> PaymentLine:
    def opt_int(name: str) -> int | None:
        value = state.get(name)
        return None if value is None else int(value)

    credits = state.get("credits")
    return PaymentLine(
        payment_id=state["payment_id"],
        created_at=int(state["first_at"]),
        amount=opt_int("amount"),
        currency=state.get("currency"),
        credits=None if credits is None else Decimal(credits),
        credited=Decimal(state.get("credited", 0)),
        status=status_of(state),
        kind=state.get("topup"),
        offer=state.get("offer"),
        refunded_amount=int(state.get("refunded", 0)),
        invoice_id=state.get("invoice_id"),
        receipt_url=state.get("receipt_url"),
        checkout_session_id=state.get("session_id"),
    )


def same_facts(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False
    ignore = {"events", "ver", "updated_at", *_ITEM_KEYS}
    return {k: v for k, v in old.items() if k not in ignore} == {
        k: v for k, v in new.items() if k not in ignore
    }
