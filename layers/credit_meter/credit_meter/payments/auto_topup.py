"""Auto top-up: when a wallet's available credits fall below its threshold, buy its pack with
the saved card, once per crossing (docs/payments.md). The state rides on the wallet item
(``atx`` threshold, ``ats`` armed/fired/declined, ``atn`` crossing number, ``atb`` retry-after),
where the table's stream shows it next to every change of ``avail``; the settings and the last
attempt are an item of their own (``A``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from credit_meter.core import clock
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.core.errors import FieldProblem, InvalidRequest, no_wallet
from credit_meter.payments.topups import Attempt, AutoTopup, Gateway, checkout_metadata
from credit_meter.storage import items, wallet_record
from credit_meter.storage.records import now_ms
from credit_meter.storage.store import Store, Update, WriteRejected


class AutoTopups:
    """Auto top-up's settings and its state machine, driven by the stream of wallet writes. The
    purchase it starts is credited like any other (:mod:`credit_meter.payments.payments`)."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()

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
        has_card = bool(settings.get("payment_method_id"))
        problems = self._problems(
            enabled, threshold, pack, customer_id, payment_method_id, has_card
        )
        if problems:
            raise InvalidRequest(problems)
        fields: dict[str, Any] = {"kind": "auto_topup", "enabled": enabled}
        if threshold is not None:
            fields["threshold"] = threshold
        if pack is not None:
            fields["pack"] = pack
        if customer_id is not None:
            fields.update(
                customer_id=customer_id, payment_method_id=payment_method_id, card_at=now_ms()
            )
        wallet_write = _state_write(wallet_id, enabled, threshold)
        try:
            # The wallet write's condition is the existence check: no read before it.
            self.store.transact(
                wallet_write, Update.setting(items.auto_topup_key(wallet_id), fields)
            )
        except WriteRejected:
            raise no_wallet(wallet_id) from None
        if customer_id is not None and enabled:
            # A new card ends a back-off after a decline: the next write below tries it.
            with contextlib.suppress(WriteRejected):
                self.store.update(wallet_record.auto_topup_rearm_update(wallet_id))
        return self.auto_topup(wallet_id)

    def _problems(
        self,
        enabled: bool,
        threshold: Decimal | None,
        pack: str | None,
        customer_id: str | None,
        payment_method_id: str | None,
        has_card: bool,
    ) -> list[FieldProblem]:
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
        elif enabled and customer_id is None and not has_card:
            problems.append(
                FieldProblem(
                    "payment_method_id",
                    "no saved payment method: buy once with save_payment_method, "
                    "or give customer_id and payment_method_id",
                )
            )
        return problems

    def auto_topup(self, wallet_id: str) -> AutoTopup:
        wallet = self.store.get(wallet_record.key(wallet_id))
        if wallet is None:
            raise no_wallet(wallet_id)
        settings = self.store.get(items.auto_topup_key(wallet_id)) or {}
        enabled = bool(settings.get("enabled"))
        threshold = settings.get("threshold")
        retry = wallet.get(wallet_record.AUTO_TOPUP_RETRY_AFTER)
        return AutoTopup(
            wallet_id=wallet_id,
            enabled=enabled,
            threshold=None if threshold is None else Decimal(threshold),
            pack=settings.get("pack"),
            has_payment_method=bool(settings.get("payment_method_id")),
            state=wallet.get(wallet_record.AUTO_TOPUP_STATE) if enabled else None,
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
        threshold = wallet.get(wallet_record.AUTO_TOPUP_THRESHOLD)
        state = wallet.get(wallet_record.AUTO_TOPUP_STATE)
        if threshold is None or state is None:
            return None
        wallet_id = wallet_record.wallet_id(wallet)
        below = wallet_record.available(wallet) < Decimal(threshold)
        crossing = _crossing(wallet, 0)
        if not below:
            if state != "armed":
                self._set_state(wallet_id, crossing, state, "armed")
            return None
        now = int(clock.now_ts())
        retry_after = int(wallet.get(wallet_record.AUTO_TOPUP_RETRY_AFTER, 0))
        if state == "armed" or (state == "declined" and now >= retry_after):
            fired = self._fire(wallet_id, crossing, state)
        elif state == "fired" and _crossing(old or {}, -1) != crossing:
            # The claim's own write: if the attempt after it was cut short, finish it now
            # (same crossing, same idempotency key: Stripe answers the first attempt again).
            fired = crossing
        else:
            return None
        if fired is None:
            return None
        return self._attempt(wallet_id, fired, gateway)

    def _set_state(self, wallet_id: str, crossing: int, seen: str, state: str) -> None:
        # Refused: the state moved on meanwhile (its own write is on the stream too).
        with contextlib.suppress(WriteRejected):
            self.store.update(
                wallet_record.auto_topup_state_update(wallet_id, crossing, seen, state)
            )

    def _fire(self, wallet_id: str, crossing: int, seen: str) -> int | None:
        """Claim the next crossing number; None if another record claimed it or the settings
        changed (the stream will show that write too)."""
        try:
            # Still below now, not only in the (maybe late) stream record.
            self.store.update(wallet_record.auto_topup_fire_update(wallet_id, crossing, seen))
        except WriteRejected as rejected:
            now = rejected.old[0] or {}
            # Claimed by an earlier delivery of this same record that did not finish: resume.
            if (
                now.get(wallet_record.AUTO_TOPUP_STATE) == "fired"
                and _crossing(now, -1) == crossing + 1
            ):
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
            self.store.update(wallet_record.auto_topup_declined_update(wallet_id, crossing, until))


def _state_write(wallet_id: str, enabled: bool, threshold: Decimal | None) -> Update:
    """The wallet's side of saving the settings; its condition is the wallet's existence."""
    # The state rides on the wallet, where the stream shows every balance change. A state
    # already there stays: saving the settings again while a purchase is on its way (fired)
    # or backing off (declined) must not look like a new crossing. Turned off, the auto top-up
    # function no longer sees the wallet (no threshold), but its state and crossing count
    # stay: turning it on again while a purchase is on its way must not buy a second time.
    return wallet_record.auto_topup_settings_update(wallet_id, threshold if enabled else None)


def _crossing(wallet: dict[str, Any], default: int) -> int:
    """The wallet's auto top-up crossing number (``atn``), ``default`` before the first."""
    return int(wallet.get(wallet_record.AUTO_TOPUP_CROSSING, default))
