"""Every use case on one store, for tests that drive the service as a whole: metering, plans,
periods, grants, transfers, promo codes, referrals, payments and auto top-up. The use cases are
siblings (none extends another); this is only the tests' way of reaching all of them through
one object, as the functions each reach the ones they serve."""

from __future__ import annotations

from typing import Any

from credit_meter.billing.grants import Grants
from credit_meter.billing.periods import Periods
from credit_meter.billing.plans import Plans
from credit_meter.billing.promotions import Promotions
from credit_meter.billing.referrals import Referrals
from credit_meter.billing.transfers import Transfers
from credit_meter.core.catalog import Catalog, catalog
from credit_meter.metering.service import Metering
from credit_meter.payments.auto_topup import AutoTopups
from credit_meter.payments.payments import Payments
from credit_meter.storage.store import Store


class Service:
    """A method call goes to the one use case that has the method."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()
        periods = Periods(self.store, self.catalog)
        auto_topups = AutoTopups(self.store, self.catalog)
        self._parts: tuple[Any, ...] = (
            Metering(self.store, self.catalog),
            Plans(self.store, self.catalog, periods),
            periods,
            Grants(self.store, self.catalog),
            Transfers(self.store, self.catalog),
            Promotions(self.store, self.catalog),
            Referrals(self.store, self.catalog),
            Payments(self.store, self.catalog, auto_topups),
            auto_topups,
        )

    def __getattr__(self, name: str) -> Any:
        for part in self._parts:
            if not name.startswith("_") and hasattr(type(part), name):
                return getattr(part, name)
        raise AttributeError(name)
