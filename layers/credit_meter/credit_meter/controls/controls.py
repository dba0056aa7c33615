"""What owners set to keep spending in check: alert thresholds, the period's spending limit and
members' budgets inside a shared wallet.

All of it lives on the wallet item, because the debits test it in their own conditional write
(:mod:`credit_meter.metering.holds`): the spending limit as ``lrem`` (room left: limit − used −
held), a member's budget as ``mb.<tag>.r``. :class:`Controls` composes the three parts
(:mod:`.limits`, :mod:`.alert_settings`, :mod:`.member_budgets`) for the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from credit_meter.controls.alert_settings import Alerts, AlertSettings
from credit_meter.controls.limits import Limits, SpendingLimits
from credit_meter.controls.member_budgets import MemberBudget, MemberBudgets
from credit_meter.core.alerts import Threshold
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.storage.store import Store

__all__ = ["Alerts", "Controls", "Limits", "MemberBudget"]


class Controls:
    """Limits, alert thresholds and member budgets (one read, one conditional write each)."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()
        self.spending_limits = SpendingLimits(self.store, self.catalog)
        self.alert_settings = AlertSettings(self.store)
        self.budgets = MemberBudgets(self.store)

    def limits(self, wallet_id: str) -> Limits:
        return self.spending_limits.limits(wallet_id)

    def set_limits(
        self,
        wallet_id: str,
        alert_threshold: Decimal | None,
        allowed_limit: Decimal | None,
        currency: str | None = None,
    ) -> Limits:
        return self.spending_limits.set_limits(wallet_id, alert_threshold, allowed_limit, currency)

    def alerts(self, wallet_id: str) -> Alerts:
        return self.alert_settings.alerts(wallet_id)

    def set_alerts(self, wallet_id: str, thresholds: Sequence[Threshold] | None) -> Alerts:
        return self.alert_settings.set_alerts(wallet_id, thresholds)

    def member_budget(self, wallet_id: str, member_id: str) -> MemberBudget:
        return self.budgets.member_budget(wallet_id, member_id)

    def member_budgets(self, wallet_id: str) -> list[MemberBudget]:
        return self.budgets.member_budgets(wallet_id)

    def set_member_budget(
        self, wallet_id: str, member_id: str, budget: Decimal | None
    ) -> MemberBudget:
        return self.budgets.set_member_budget(wallet_id, member_id, budget)
