"""Top-ups: checkouts, payments credited exactly once, refunds and disputes, auto top-up.
No knowledge of Stripe's SDK or of API Gateway: the webhook function turns each Stripe event
into an :class:`Observation`, and checkouts go through a :class:`Gateway`.

A payment is known by its PaymentIntent id, which every event about it carries (the checkout
session, the PaymentIntent, the charge, the dispute). Its state is one item holding *facts*
that only ever grow — paid, failed, the amount refunded so far, each dispute's status — and
the credits it has put in the wallet so far. Each event merges its facts in and then moves the
wallet by ``target − credited`` in the same transaction, on condition that the payment item
is still the version read. So an event delivered twice, late, out of order or concurrently
changes nothing the second time: the credits follow from the facts, not from the events.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from credit_meter import clock, domain, items
from credit_meter.billing import Billing, _bucket_update, _BucketChange
from credit_meter.catalog import Offer
from credit_meter.common import decode_cursor, encode_cursor, no_wallet, now_ms, record_ttl
from credit_meter.domain import Bucket
from credit_meter.errors import (
    Contention,
    FieldProblem,
    InvalidRequest,
    PaymentNotFound,
)
from credit_meter.ids import grant_id
from credit_meter.money import ZERO
from credit_meter.store import Put, Update, WriteRejected

_ATTEMPTS = 20
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
class Recorded:
    """What recording an event did."""

    payment_id: str
    wallet_id: str | None
    status: str
    credited: Decimal  # what the payment has in the wallet now
    delta: Decimal  # what this event moved (0 for a duplicate)
    unknown_wallet: bool = False


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


@dataclass(frozen=True, slots=True)
class Checkout:
    checkout_session_id: str
    url: str
    expires_at: int | None
    offer: Offer


@dataclass(frozen=True, slots=True)
class AutoTopup:
    wallet_id: str
    enabled: bool
    threshold: Decimal | None
    pack: str | None
    has_payment_method: bool
    state: str | None  # armed, fired, declined
    retry_after: int | None  # epoch seconds, after a decline
    last_attempt: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the payment provider said to an off-session payment."""

    payment_id: str | None
    status: str  # succeeded, processing, declined
    error: str | None = None


class Gateway(Protocol):
    """The payment provider, as checkouts and auto top-ups need it. Operations take a factory
    for it, called only once the request is known to need it (bad input never reaches it)."""

    def create_checkout(
        self,
        *,
        wallet_id: str,
        offer: Offer,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        customer_id: str | None,
        save_payment_method: bool,
        idempotency_key: str | None,
    ) -> Checkout: ...

    def charge_saved_method(
        self,
        *,
        offer: Offer,
        metadata: dict[str, str],
        customer_id: str,
        payment_method_id: str,
        idempotency_key: str,
    ) -> Attempt: ...

    def invoice_pdf(self, invoice_id: str) -> str | None: ...


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


def _line(state: dict[str, Any]) -> PaymentLine:
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


def _same_facts(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False
    ignore = {"events", "ver", "updated_at", *_ITEM_KEYS}
    return {k: v for k, v in old.items() if k not in ignore} == {
        k: v for k, v in new.items() if k not in ignore
    }


def deployment() -> str:
    """This deployment's name (``DEPLOYMENT_ID``: the stack name in the cloud). Payments carry
    it: several deployments may share one Stripe account, which sends every event to all."""
    return os.environ.get("DEPLOYMENT_ID") or "local"


def checkout_metadata(wallet_id: str, offer: Offer, kind: str, **more: str) -> dict[str, str]:
    """What a payment carries so its events can be credited without asking anyone."""
    return {
        "deployment": deployment(),
        "wallet_id": wallet_id,
        "credits": f"{offer.credits.normalize():f}",
        "offer": offer.offer,
        "kind": kind,
        **more,
    }


class Payments(Billing):
    """Top-ups on top of the wallet lifecycle (they add and take back purchase buckets)."""

    # -- checkout ---------------------------------------------------------------------------

    def checkout(
        self,
        wallet_id: str,
        pack: str | None,
        amount: Decimal | None,
        currency: str | None,
        success_url: str,
        cancel_url: str,
        save_payment_method: bool,
        idempotency_key: str | None,
        gateway: Callable[[], Gateway],
    ) -> Checkout:
        offer = self.catalog.topups.offer(pack, amount, currency)
        if self.store.get(items.wallet_key(wallet_id)) is None:
            raise no_wallet(wallet_id)
        settings = self.store.get(items.auto_topup_key(wallet_id)) or {}
        return gateway().create_checkout(
            wallet_id=wallet_id,
            offer=offer,
            metadata=checkout_metadata(wallet_id, offer, "checkout"),
            success_url=success_url,
            cancel_url=cancel_url,
            customer_id=settings.get("customer_id"),
            save_payment_method=save_payment_method,
            # Scoped to the wallet: one client key never names two wallets' checkouts.
            idempotency_key=None if idempotency_key is None else f"{wallet_id}:{idempotency_key}",
        )

    # -- webhook events ---------------------------------------------------------------------

    def record(self, obs: Observation) -> Recorded:
        """Merge one event's facts into its payment and move the wallet to match, atomically."""
        for attempt in range(_ATTEMPTS):
            old = self.store.get(items.payment_key(obs.payment_id))
            new = merge(old, obs)
            wallet_id = new.get("wallet_id")
            wallet = None
            if wallet_id is not None and not new.get("unknown_wallet"):
                wallet = self.store.get(items.wallet_key(wallet_id))
                if wallet is None and new.get("paid"):
                    # Paid into a wallet that does not exist: kept for an operator, never
                    # credited (a wallet created later under that id is someone else's).
                    new["unknown_wallet"] = True
            credited = Decimal((old or {}).get("credited", 0))
            target = target_credits(new) if wallet is not None else credited
            delta = target - credited
            if _same_facts(old, new) and delta == 0:
                self._follow_up(wallet, new, obs)  # a retry finishes what a failure left
                return self._recorded(new, ZERO)
            new["credited"] = target
            new["ver"] = int((old or {}).get("ver", 0)) + 1
            new["updated_at"] = now_ms()
            new.pop("ttl", None)
            if wallet_id is None:
                # A charge or dispute of a payment no event has named a wallet for yet (maybe
                # another system's on the same Stripe account): kept a while, then forgotten.
                new["ttl"] = record_ttl()
            writes: list[Update | Put] = []
            if wallet is not None and wallet_id is not None and delta != 0:
                writes.append(self._move(wallet_id, wallet, new, delta, obs))  # may add a gid
            writes.append(
                Put(
                    {**items.payment_key(obs.payment_id), "kind": "payment", **new},
                    condition="attribute_not_exists(pk)" if old is None else "ver = :ver",
                    values={} if old is None else {":ver": old["ver"]},
                )
            )
            if wallet is not None and wallet_id is not None:
                line_key = items.payment_line_key(wallet_id, int(new["first_at"]), obs.payment_id)
                writes.append(Put({**line_key, "kind": "payment_line", **new}, condition=None))
            try:
                self.store.transact(*writes)
            except WriteRejected:
                # Another event for this payment, or a bucket change (a busy wallet): read
                # again after a short, growing, jittered pause.
                time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                continue
            self._follow_up(wallet, new, obs)
            return self._recorded(new, delta)
        raise Contention("the payment kept changing; Stripe will deliver the event again")

    def _follow_up(
        self, wallet: dict[str, Any] | None, state: dict[str, Any], obs: Observation
    ) -> None:
        """What a recorded payment implies beyond its credits, done on every delivery (each
        is idempotent) so that a delivery cut short after its transaction is finished by
        Stripe's retry: keep the card the payer agreed to keep, back off after a declined
        auto top-up."""
        wallet_id = state.get("wallet_id")
        if wallet is None or wallet_id is None:
            return
        if obs.saves_method and state.get("paid"):
            self._save_method(wallet_id, state)
        elif state.get("paid") and state.get("customer_id") and state.get("topup") == "checkout":
            # The buyer's Stripe customer, for the wallet's next checkouts (one customer per
            # wallet, not one per purchase).
            self.store.update(
                Update(
                    key=items.auto_topup_key(wallet_id),
                    expression="SET customer_id = if_not_exists(customer_id, :c), kind = :k",
                    condition=None,
                    values={":c": state["customer_id"], ":k": "auto_topup"},
                )
            )
        if (
            state.get("topup") == "auto_topup"
            and state.get("failed")
            and not state.get("paid")
            and state.get("crossing") is not None
        ):
            self.auto_topup_declined(wallet_id, int(state["crossing"]))

    @staticmethod
    def _recorded(state: dict[str, Any], delta: Decimal) -> Recorded:
        return Recorded(
            payment_id=state["payment_id"],
            wallet_id=state.get("wallet_id"),
            status=status_of(state),
            credited=Decimal(state.get("credited", 0)),
            delta=delta,
            unknown_wallet=bool(state.get("unknown_wallet")),
        )

    def _move(
        self,
        wallet_id: str,
        wallet: dict[str, Any],
        state: dict[str, Any],
        delta: Decimal,
        obs: Observation,
    ) -> Update:
        """The wallet write that moves it by ``delta`` for this payment (state["gids"] grows)."""
        at = now_ms()
        buckets = items.buckets(wallet)
        drawn = Decimal(wallet["drawn"])
        pid = state["payment_id"]
        gids = list(state.get("gids") or [])
        if delta > 0:
            gid = grant_id(at, wallet_id, "payment", pid, str(state["ver"]))
            expires = self._period_end(wallet) if self._purchases_expire(wallet) else None
            prio = self.catalog.sources["purchase"].priority
            bucket = Bucket(gid, "purchase", delta, prio, at, expires)
            rebased = domain.add_bucket(buckets, drawn, bucket, self.catalog)
            reason = "payment " + pid if not gids else "payment " + pid + " reinstated"
            post = items.posting(
                gid,
                "grant",
                delta,
                "posted",
                at,
                source="purchase",
                bucket_id=gid,
                expires_at=expires,
                reason=reason,
            )
            state["gids"] = [*gids, gid]
        else:
            rebased = domain.take_back(buckets, drawn, set(gids), -delta, self.catalog)
            why = "dispute" if obs.dispute_id is not None else "refund"
            # Like a grant id: time-sortable, and apart for every version of the payment.
            reversal = grant_id(at, wallet_id, "reversal", pid, str(state["ver"]))
            post = items.posting(
                "rev_" + reversal.removeprefix("grt_"),
                "reversal",
                delta,
                "posted",
                at,
                source="purchase",
                reason=f"{why} of payment {pid}",
            )
        change = _BucketChange(
            buckets=rebased.buckets,
            drawn_delta=rebased.drawn_delta,
            balance_delta=delta,
            posts=[post],
            period_end=int(wallet["pe"]),
        )
        return _bucket_update(wallet_id, wallet, change)

    def _save_method(self, wallet_id: str, state: dict[str, Any]) -> None:
        """Keep the card of a paid checkout made with ``save_payment_method`` for auto top-ups:
        the most recent payment's card wins. Not part of the payment's transaction — a card
        that cannot be saved must never keep the credits from arriving."""
        customer, method = state.get("customer_id"), state.get("payment_method_id")
        if not customer or not method:
            return
        with contextlib.suppress(WriteRejected):  # a more recent card is saved already
            self.store.update(
                Update(
                    key=items.auto_topup_key(wallet_id),
                    expression="SET customer_id = :c, payment_method_id = :m, card_at = :t, "
                    "kind = :k",
                    condition="attribute_not_exists(card_at) OR card_at <= :t",
                    values={
                        ":c": customer,
                        ":m": method,
                        ":t": int(state["first_at"]),
                        ":k": "auto_topup",
                    },
                )
            )

    # -- the payments list ------------------------------------------------------------------

    def payments(
        self, wallet_id: str, limit: int, cursor: str | None
    ) -> tuple[list[PaymentLine], str | None]:
        """The wallet's payments, newest first."""
        start = None if cursor is None else decode_cursor(cursor, items.PAYMENT_LINE_PREFIX)
        if self.store.get(items.wallet_key(wallet_id)) is None:
            raise no_wallet(wallet_id)
        found, last = self.store.query_page(
            items.wallet_pk(wallet_id), items.PAYMENT_LINE_PREFIX, limit, start
        )
        return [_line(s) for s in found], None if last is None else encode_cursor(last)

    def invoice_link(self, wallet_id: str, payment_id: str, gateway: Callable[[], Gateway]) -> str:
        state = self.store.get(items.payment_key(payment_id))
        if state is None or state.get("wallet_id") != wallet_id or state.get("unknown_wallet"):
            raise PaymentNotFound(f"payment {payment_id!r} does not exist")
        invoice = state.get("invoice_id")
        link = gateway().invoice_pdf(invoice) if invoice else None
        link = link or state.get("receipt_url")
        if not link:
            raise PaymentNotFound(f"payment {payment_id!r} has no invoice or receipt yet")
        return str(link)

    # -- auto top-up ------------------------------------------------------------------------

    def set_auto_topup(
        self,
        wallet_id: str,
        enabled: bool,
        threshold: Decimal | None,
        pack: str | None,
        customer_id: str | None,
        payment_method_id: str | None,
    ) -> AutoTopup:
        """Turn auto top-up on (when available falls below ``threshold``, buy ``pack`` with the
        saved card) or off. The card is the one given, else the last paid checkout's."""
        settings = self.store.get(items.auto_topup_key(wallet_id)) or {}
        problems = []
        if enabled and threshold is None:
            problems.append(FieldProblem("threshold", "required to enable auto top-up"))
        if enabled and pack is None:
            problems.append(FieldProblem("pack", "required to enable auto top-up"))
        if pack is not None and pack not in self.catalog.topups.packs:
            known = ", ".join(sorted(self.catalog.topups.packs))
            problems.append(FieldProblem("pack", f"unknown pack {pack!r} ({known})"))
        if (customer_id is None) != (payment_method_id is None):
            problems.append(
                FieldProblem("payment_method_id", "give both customer_id and payment_method_id")
            )
        elif enabled and customer_id is None and not settings.get("payment_method_id"):
            problems.append(
                FieldProblem(
                    "payment_method_id",
                    "no saved payment method: buy once with save_payment_method, "
                    "or give customer_id and payment_method_id",
                )
            )
        if problems:
            raise InvalidRequest(problems)
        wallet = self.store.get(items.wallet_key(wallet_id))
        if wallet is None:
            raise no_wallet(wallet_id)
        fields: dict[str, Any] = {"kind": "auto_topup", "enabled": enabled}
        if threshold is not None:
            fields["threshold"] = threshold
        if pack is not None:
            fields["pack"] = pack
        if customer_id is not None:
            fields.update(
                customer_id=customer_id, payment_method_id=payment_method_id, card_at=now_ms()
            )
        if enabled:
            # The state rides on the wallet, where the stream shows every balance change. A
            # state already there stays: saving the settings again while a purchase is on its
            # way (fired) or backing off (declined) must not look like a new crossing.
            wallet_write = Update(
                key=items.wallet_key(wallet_id),
                expression="SET atx = :x, ats = if_not_exists(ats, :armed), "
                "atn = if_not_exists(atn, :zero)",
                condition="attribute_exists(pk)",
                values={":x": threshold, ":armed": "armed", ":zero": 0},
            )
        else:
            # Without atx the auto top-up function no longer sees the wallet. Its state and
            # crossing count stay: turning it on again while a purchase is on its way must
            # not buy a second time.
            wallet_write = Update(
                key=items.wallet_key(wallet_id),
                expression="REMOVE atx",
                condition="attribute_exists(pk)",
            )
        self.store.transact(wallet_write, self._settings_write(wallet_id, fields))
        if customer_id is not None and enabled:
            # A new card ends a back-off after a decline: the next write below tries it.
            with contextlib.suppress(WriteRejected):
                self.store.update(
                    Update(
                        key=items.wallet_key(wallet_id),
                        expression="SET ats = :armed REMOVE atb",
                        condition="ats = :declined",
                        values={":armed": "armed", ":declined": "declined"},
                    )
                )
        return self.auto_topup(wallet_id)

    @staticmethod
    def _settings_write(wallet_id: str, fields: dict[str, Any]) -> Update:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        return Update(
            key=items.auto_topup_key(wallet_id),
            expression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
            condition=None,
            names=names,
            values={f":f{i}": v for i, v in enumerate(fields.values())},
        )

    def auto_topup(self, wallet_id: str) -> AutoTopup:
        wallet = self.store.get(items.wallet_key(wallet_id))
        if wallet is None:
            raise no_wallet(wallet_id)
        settings = self.store.get(items.auto_topup_key(wallet_id)) or {}
        enabled = bool(settings.get("enabled"))
        threshold = settings.get("threshold")
        retry = wallet.get("atb")
        return AutoTopup(
            wallet_id=wallet_id,
            enabled=enabled,
            threshold=None if threshold is None else Decimal(threshold),
            pack=settings.get("pack"),
            has_payment_method=bool(settings.get("payment_method_id")),
            state=wallet.get("ats") if enabled else None,
            retry_after=None if retry is None or not enabled else int(retry),
            last_attempt=settings.get("last_attempt"),
        )

    def on_wallet_change(
        self,
        old: dict[str, Any] | None,
        wallet: dict[str, Any],
        gateway: Callable[[], Gateway],
    ) -> Attempt | None:
        """What the auto top-up function does with one wallet write from the stream: buy the
        pack once per crossing below the threshold; re-arm once available is back above it."""
        threshold = wallet.get("atx")
        state = wallet.get("ats")
        if threshold is None or state is None:
            return None
        wallet_id = wallet["wallet_id"]
        below = Decimal(wallet["avail"]) < Decimal(threshold)
        crossing = int(wallet.get("atn", 0))
        if not below:
            if state != "armed":
                self._set_state(wallet_id, crossing, state, "armed")
            return None
        now = int(clock.now_ts())
        if state == "armed" or (state == "declined" and now >= int(wallet.get("atb", 0))):
            fired = self._fire(wallet_id, crossing, state)
        elif state == "fired" and int((old or {}).get("atn", -1)) != crossing:
            # The claim's own write: if the attempt after it was cut short, finish it now
            # (same crossing, same idempotency key: Stripe answers the first attempt again).
            fired = crossing
        else:
            return None
        if fired is None:
            return None
        return self._attempt(wallet_id, fired, gateway)

    def _set_state(self, wallet_id: str, crossing: int, seen: str, state: str) -> bool:
        try:
            self.store.update(
                Update(
                    key=items.wallet_key(wallet_id),
                    expression="SET ats = :s REMOVE atb",
                    condition="ats = :seen AND atn = :n",
                    values={":s": state, ":seen": seen, ":n": crossing},
                )
            )
        except WriteRejected:
            return False
        return True

    def _fire(self, wallet_id: str, crossing: int, seen: str) -> int | None:
        """Claim the next crossing number; None if another record claimed it or the settings
        changed (the stream will show that write too)."""
        try:
            self.store.update(
                Update(
                    key=items.wallet_key(wallet_id),
                    expression="SET ats = :fired, atn = :next REMOVE atb",
                    # Still below now, not only in the (maybe late) stream record.
                    condition="ats = :seen AND atn = :n AND avail < atx",
                    values={
                        ":fired": "fired",
                        ":seen": seen,
                        ":n": crossing,
                        ":next": crossing + 1,
                    },
                )
            )
        except WriteRejected as rejected:
            now = rejected.old[0] or {}
            # Claimed by an earlier delivery of this same record that did not finish: resume.
            if now.get("ats") == "fired" and int(now.get("atn", -1)) == crossing + 1:
                return crossing + 1
            return None
        return crossing + 1

    def _attempt(
        self, wallet_id: str, crossing: int, gateway: Callable[[], Gateway]
    ) -> Attempt | None:
        settings = self.store.get(items.auto_topup_key(wallet_id)) or {}
        last = settings.get("last_attempt") or {}
        if int(last.get("crossing", -1)) == crossing:
            return None  # already attempted; the stream showed this crossing again
        pack = self.catalog.topups.packs.get(str(settings.get("pack")))
        customer, method = settings.get("customer_id"), settings.get("payment_method_id")
        if not settings.get("enabled") or pack is None or not customer or not method:
            attempt = Attempt(None, "declined", "auto top-up has no pack or payment method")
        else:
            offer = self.catalog.topups.offer(pack.id, None, None)
            attempt = gateway().charge_saved_method(
                offer=offer,
                metadata=checkout_metadata(wallet_id, offer, "auto_topup", crossing=str(crossing)),
                customer_id=str(customer),
                payment_method_id=str(method),
                idempotency_key=f"auto-topup:{wallet_id}:{crossing}",
            )
        self._attempted(wallet_id, crossing, attempt)
        return attempt

    def _attempted(self, wallet_id: str, crossing: int, attempt: Attempt) -> None:
        now = int(clock.now_ts())
        record = {
            "crossing": crossing,
            "at": now * 1000,
            "status": attempt.status,
            "payment_id": attempt.payment_id,
            "error": attempt.error,
        }
        if attempt.status == "declined":  # first: a crash after it must not leave it fired
            self.auto_topup_declined(wallet_id, crossing)
        self.store.set_fields(
            items.auto_topup_key(wallet_id),
            {"last_attempt": {k: v for k, v in record.items() if v is not None}},
        )

    def auto_topup_declined(self, wallet_id: str, crossing: int) -> None:
        """Back off after a decline: no new attempt before the configured pause (≥ 1 hour)."""
        until = int(clock.now_ts()) + self.catalog.topups.auto_topup_backoff_seconds
        # Settings changed or a later crossing began: nothing to back off from.
        with contextlib.suppress(WriteRejected):
            self.store.update(
                Update(
                    key=items.wallet_key(wallet_id),
                    expression="SET ats = :d, atb = :until",
                    condition="atn = :n AND ats = :fired",
                    values={":d": "declined", ":until": until, ":n": crossing, ":fired": "fired"},
                )
            )
