"""The period's spending limit and its alert threshold.

The limit lives on the wallet as ``lrem`` (room left: limit − used − held), which every debit
tests in its own conditional write (:mod:`credit_meter.metering.holds`). Changing the limit
moves the room by the difference, in one write conditioned on the limit it replaces, so debits
landing meanwhile are never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from credit_meter.core import alerts
from credit_meter.core.alerts import WalletState
from credit_meter.core.catalog import Catalog
from credit_meter.core.errors import Contention, FieldProblem, InvalidRequest
from credit_meter.core.money import ZERO, quantize
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store, WriteRejected
from credit_meter.storage.wallet_record import Item

ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Limits:
    wallet_id: str
    period_start: int
    period_end: int
    alert_threshold: Decimal | None
    allowed_limit: Decimal | None
    used: Decimal
    held: Decimal
    remaining: Decimal | None  # what may still be reserved or charged this period
    state: WalletState


def limits_of(wallet: Item) -> Limits:
    used, held = wallet_record.used(wallet), wallet_record.held(wallet)
    lim = wallet_record.limit(wallet)
    remaining = None
    if lim is not None:
        room = wallet_record.limit_room(wallet)
        remaining = max(ZERO, lim - used - held if room is None else room)
    return Limits(
        wallet_id=wallet_record.wallet_id(wallet),
        period_start=wallet_record.period_start(wallet),
        period_end=wallet_record.period_end(wallet),
        alert_threshold=wallet_record.limit_alert(wallet),
        allowed_limit=lim,
        used=used,
        held=held,
        remaining=remaining,
        state=alerts.wallet_state(wallet_record.alert_facts(wallet)),
    )


class SpendingLimits:
    """Read and set the limit (one read, one conditional write)."""

    def __init__(self, store: Store, cat: Catalog) -> None:
        self.store, self.catalog = store, cat

    def limits(self, wallet_id: str) -> Limits:
        return limits_of(wallet_record.read(self.store, wallet_id))

    def set_limits(
        self,
        wallet_id: str,
        alert_threshold: Decimal | None,
        allowed_limit: Decimal | None,
        currency: str | None = None,
    ) -> Limits:
        """Set (or, with None, remove) the period's alert threshold and allowed limit, in
        credits or in the catalog's top-up currency (converted at its rate)."""
        if currency is not None:
            rate = self._credits_per_unit(currency)
            alert_threshold = None if alert_threshold is None else quantize(alert_threshold * rate)
            allowed_limit = None if allowed_limit is None else quantize(allowed_limit * rate)
        if (
            alert_threshold is not None
            and allowed_limit is not None
            and alert_threshold > allowed_limit
        ):
            raise InvalidRequest([FieldProblem("alert_threshold", "must not exceed allowed_limit")])
        for _ in range(ATTEMPTS):
            wallet = wallet_record.read(self.store, wallet_id)
            update = wallet_record.limits_update(wallet_id, wallet, allowed_limit, alert_threshold)
            try:
                self.store.update(update)
            except WriteRejected:
                continue  # the limit (or, when set outright, the use) changed: read again
            return self.limits(wallet_id)
        raise Contention(f"the limits of wallet {wallet_id!r} kept changing")

    def _credits_per_unit(self, currency: str) -> Decimal:
        fiat = self.catalog.topups.fiat
        if fiat is None:
            raise InvalidRequest([FieldProblem("currency", "give amounts in credits")])
        if currency.lower() != fiat.currency:
            raise InvalidRequest(
                [FieldProblem("currency", f"give amounts in credits or {fiat.currency.upper()}")]
            )
        return fiat.credits_per_unit
