"""The wallet's alert thresholds, chosen by its owner. The alerts themselves are found on the
table's stream (:mod:`credit_meter.core.alerts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from credit_meter.core import alerts
from credit_meter.core.alerts import Threshold, WalletState
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store, WriteRejected
from credit_meter.storage.wallet_record import Item


@dataclass(frozen=True, slots=True)
class ThresholdStatus:
    threshold: Threshold
    crossed: bool


@dataclass(frozen=True, slots=True)
class Alerts:
    wallet_id: str
    thresholds: list[ThresholdStatus]
    defaults: bool  # the wallet has not chosen its own thresholds
    state: WalletState


def alerts_of(wallet: Item) -> Alerts:
    facts = wallet_record.alert_facts(wallet)
    return Alerts(
        wallet_id=facts.wallet_id,
        thresholds=[
            ThresholdStatus(t, alerts.is_crossed(facts, t)) for t in alerts.thresholds_of(facts)
        ],
        defaults=facts.thresholds is None,
        state=alerts.wallet_state(facts),
    )


class AlertSettings:
    def __init__(self, store: Store) -> None:
        self.store = store

    def alerts(self, wallet_id: str) -> Alerts:
        return alerts_of(wallet_record.read(self.store, wallet_id))

    def set_alerts(self, wallet_id: str, thresholds: Sequence[Threshold] | None) -> Alerts:
        """The wallet's thresholds; None goes back to the defaults, an empty list turns
        threshold alerts off (depletion and limit events still fire)."""
        stored = None if thresholds is None else wallet_record.threshold_items(thresholds)
        update = wallet_record.alert_thresholds_update(wallet_id, stored)
        try:
            self.store.update(update)
        except WriteRejected:
            wallet_record.read(self.store, wallet_id)  # 404
            raise
        return self.alerts(wallet_id)
