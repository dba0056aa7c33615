"""The metering operations: one call per API route, no knowledge of API Gateway.

:class:`Metering` composes the parts the metering function serves: reservations
(:mod:`~credit_meter.metering.holds`), one-shot charges (:mod:`~credit_meter.metering.charges`),
hold expiry (:mod:`~credit_meter.metering.expiry`) and wallet reads. Each write is a single
conditional DynamoDB request (a transaction where an operation record must commit with the
wallet update); a refused condition is explained from the old item the refusal returns, so the
common paths cost one round trip. ``docs/data-model.md`` lists every condition and why it makes
its write safe under races.
"""

from __future__ import annotations

from decimal import Decimal

from credit_meter.core.catalog import Catalog, UsageLine, catalog
from credit_meter.core.idempotency import Request
from credit_meter.core.wallets import Charge, Ended, Reservation, WalletView
from credit_meter.metering.charges import Charges
from credit_meter.metering.costs import Cost
from credit_meter.metering.expiry import HoldExpiry, SweepReport
from credit_meter.metering.holds import SWEEP_REVISIT_SECONDS, Holds
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store

__all__ = ["SWEEP_REVISIT_SECONDS", "Cost", "Ended", "Metering", "Request", "SweepReport"]


class Metering:
    """The metering service (the hot path, hold expiry, reads). Holds a :class:`Store`; cheap
    to make, one per invocation is fine. :mod:`credit_meter.billing` has plans, periods and
    grants beside it."""

    def __init__(self, store: Store | None = None, cat: Catalog | None = None) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()
        self.holds = Holds(self.store, self.catalog)
        self.charges = Charges(self.store, self.catalog)
        self.expiry = HoldExpiry(self.store)

    def get_wallet(self, wallet_id: str) -> WalletView:
        return wallet_record.view(wallet_record.read(self.store, wallet_id))

    def quote(self, wallet_id: str, usage: list[UsageLine]) -> Decimal:
        credits = self.catalog.price(usage)
        wallet_record.read(self.store, wallet_id)
        return credits

    def reserve(
        self,
        wallet_id: str,
        cost: Cost,
        request: Request,
        feature: str,
        member_id: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> Reservation:
        return self.holds.reserve(wallet_id, cost, request, feature, member_id, expires_in_seconds)

    def commit(self, wallet_id: str, reservation_id: str, cost: Cost, request: Request) -> Ended:
        return self.holds.commit(wallet_id, reservation_id, cost, request)

    def release(self, wallet_id: str, reservation_id: str, request: Request) -> Ended:
        return self.holds.release(wallet_id, reservation_id, request)

    def charge(
        self,
        wallet_id: str,
        cost: Cost,
        request: Request,
        feature: str,
        member_id: str | None = None,
    ) -> Charge:
        return self.charges.charge(wallet_id, cost, request, feature, member_id)

    def sweep(self, limit: int | None = None) -> SweepReport:
        return self.expiry.sweep(limit)

    def expire_holds(self, wallet_id: str) -> int:
        return self.expiry.expire_holds(wallet_id)
