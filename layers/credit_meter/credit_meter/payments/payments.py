"""Top-ups: checkouts, payments credited exactly once, refunds and disputes (auto top-up:
:mod:`credit_meter.payments.auto_topup`). No knowledge of Stripe's SDK or of API Gateway: the
webhook function turns each Stripe event into an :class:`~credit_meter.payments.facts.Observation`,
and checkouts go through a :class:`~credit_meter.payments.topups.Gateway`.

A payment is known by its PaymentIntent id, which every event about it carries (the checkout
session, the PaymentIntent, the charge, the dispute). Its state is one item holding *facts*
that only ever grow — paid, failed, the amount refunded so far, each dispute's status — and
the credits it has put in the wallet so far. Each event merges its facts in and then moves the
wallet by ``target − credited`` in the same transaction, on condition that the payment item
is still the version read. So an event delivered twice, late, out of order or concurrently
changes nothing the second time: the credits follow from the facts, not from the events
(:mod:`credit_meter.payments.facts`).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit_meter.billing import buckets
from credit_meter.billing.buckets import BucketChange, bucket_update
from credit_meter.core import wallets
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.core.errors import Contention, PaymentNotFound, no_wallet
from credit_meter.core.ids import grant_id
from credit_meter.core.money import ZERO
from credit_meter.core.wallets import Bucket
from credit_meter.payments.auto_topup import AutoTopups
from credit_meter.payments.facts import (
    Observation,
    PaymentLine,
    line,
    merge,
    same_facts,
    status_of,
    target_credits,
)
from credit_meter.payments.topups import Checkout, Gateway, checkout_metadata
from credit_meter.storage import items, wallet_record
from credit_meter.storage.pages import decode_cursor, encode_cursor
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Store, Update, WriteRejected

_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording an event did."""

    payment_id: str
    wallet_id: str | None
    status: str
    credited: Decimal  # what the payment has in the wallet now
    delta: Decimal  # what this event moved (0 for a duplicate)
    unknown_wallet: bool = False


class Payments:
    """Checkouts and the payments they become: purchase buckets added and taken back with the
    billing bucket change (:mod:`credit_meter.billing.buckets`). A declined auto top-up's back-off
    goes to its sibling :class:`~credit_meter.payments.auto_topup.AutoTopups`."""

    def __init__(
        self,
        store: Store | None = None,
        cat: Catalog | None = None,
        auto_topups: AutoTopups | None = None,
    ) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()
        self.auto_topups = auto_topups or AutoTopups(self.store, self.catalog)

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
        if self.store.get(wallet_record.key(wallet_id)) is None:
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
                wallet = self.store.get(wallet_record.key(wallet_id))
                if wallet is None and new.get("paid"):
                    # Paid into a wallet that does not exist: kept for an operator, never
                    # credited (a wallet created later under that id is someone else's).
                    new["unknown_wallet"] = True
            credited = Decimal((old or {}).get("credited", 0))
            target = target_credits(new) if wallet is not None else credited
            delta = target - credited
            if same_facts(old, new) and delta == 0:
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
            self.auto_topups.auto_topup_declined(wallet_id, int(state["crossing"]))

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
        held = wallet_record.buckets(wallet)
        drawn = wallet_record.drawn(wallet)
        pid = state["payment_id"]
        gids = list(state.get("gids") or [])
        if delta > 0:
            gid = grant_id(at, wallet_id, "payment", pid, str(state["ver"]))
            expires = None
            if buckets.purchases_expire(wallet, self.catalog):
                expires = buckets.period_end(wallet)
            prio = self.catalog.sources["purchase"].priority
            bucket = Bucket(gid, "purchase", delta, prio, at, expires)
            # Not buckets.add_bucket: a payment is credited even beyond the maximum of grants.
            rebased = wallets.add_bucket(held, drawn, bucket, self.catalog)
            reason = "payment " + pid if not gids else "payment " + pid + " reinstated"
            post = wallet_record.posting(
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
            rebased = wallets.take_back(held, drawn, set(gids), -delta, self.catalog)
            why = "dispute" if obs.dispute_id is not None else "refund"
            # Like a grant id: time-sortable, and apart for every version of the payment.
            reversal = grant_id(at, wallet_id, "reversal", pid, str(state["ver"]))
            post = wallet_record.posting(
                "rev_" + reversal.removeprefix("grt_"),
                "reversal",
                delta,
                "posted",
                at,
                source="purchase",
                reason=f"{why} of payment {pid}",
            )
        change = BucketChange(
            buckets=rebased.buckets,
            drawn_delta=rebased.drawn_delta,
            balance_delta=delta,
            posts=[post],
            period_end=wallet_record.period_end(wallet),
        )
        return bucket_update(wallet_id, wallet, change)

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
        if self.store.get(wallet_record.key(wallet_id)) is None:
            raise no_wallet(wallet_id)
        found, last = self.store.query_page(
            items.wallet_pk(wallet_id), items.PAYMENT_LINE_PREFIX, limit, start
        )
        return [line(s) for s in found], None if last is None else encode_cursor(last)

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
