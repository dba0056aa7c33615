"""The API's reporting, top-up, limit and key operations (see ``_resources.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from credit_meter_client import models as m
from credit_meter_client._base import Call, _Resource, body_of, new_key, segment
from credit_meter_client._resources import Amount, _iso, _w


class UsageReports(_Resource):
    def summary(self, wallet_id: str) -> m.SummaryOut:
        path = f"{_w(wallet_id)}/usage/summary"
        return self._runner.run(Call("GET", path, m.SummaryOut))

    def series(
        self,
        wallet_id: str,
        *,
        granularity: str | None = None,
        from_: date | str | None = None,
        to: date | str | None = None,
        group_by: str | None = None,
    ) -> m.SeriesOut:
        params = {"granularity": granularity, "from": _iso(from_), "to": _iso(to)}
        params["group_by"] = group_by
        path = f"{_w(wallet_id)}/usage"
        return self._runner.run(Call("GET", path, m.SeriesOut, None, params))

    def org(
        self, org_id: str, *, from_: date | str | None = None, to: date | str | None = None
    ) -> m.OrgUsageOut:
        params = {"from": _iso(from_), "to": _iso(to)}
        path = f"/v1/orgs/{segment(org_id)}/usage"
        return self._runner.run(Call("GET", path, m.OrgUsageOut, None, params))


class Prices(_Resource):
    def get(self) -> m.PricesOut:
        """Meters, model tiers and plans."""
        return self._runner.run(Call("GET", "/v1/prices", m.PricesOut))


class Topups(_Resource):
    def offers(self) -> m.OffersOut:
        return self._runner.run(Call("GET", "/v1/topups/offers", m.OffersOut))

    def checkout(
        self,
        wallet_id: str,
        *,
        success_url: str,
        cancel_url: str,
        pack: str | None = None,
        amount: Amount | None = None,
        currency: str | None = None,
        save_payment_method: bool | None = None,
        idempotency_key: str | None = None,
    ) -> m.CheckoutOut:
        body = body_of(
            pack=pack,
            amount=amount,
            currency=currency,
            success_url=success_url,
            cancel_url=cancel_url,
            save_payment_method=save_payment_method,
        )
        path = f"{_w(wallet_id)}/checkout"
        call = Call("POST", path, m.CheckoutOut, body, idempotency_key=new_key(idempotency_key))
        return self._runner.run(call)

    def set_auto(
        self,
        wallet_id: str,
        *,
        enabled: bool,
        threshold: Amount | None = None,
        pack: str | None = None,
        customer_id: str | None = None,
        payment_method_id: str | None = None,
    ) -> m.AutoTopupOut:
        body = body_of(
            enabled=enabled,
            threshold=threshold,
            pack=pack,
            customer_id=customer_id,
            payment_method_id=payment_method_id,
        )
        path = f"{_w(wallet_id)}/auto-topup"
        return self._runner.run(Call("PUT", path, m.AutoTopupOut, body))

    def get_auto(self, wallet_id: str) -> m.AutoTopupOut:
        return self._runner.run(Call("GET", f"{_w(wallet_id)}/auto-topup", m.AutoTopupOut))


class Payments(_Resource):
    def page(
        self, wallet_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> m.PaymentsOut:
        params = {"limit": limit, "cursor": cursor}
        path = f"{_w(wallet_id)}/payments"
        return self._runner.run(Call("GET", path, m.PaymentsOut, None, params))

    def list(self, wallet_id: str, *, limit: int | None = None) -> Iterator[m.PaymentOut]:
        call = Call("GET", f"{_w(wallet_id)}/payments", m.PaymentsOut, None, {"limit": limit})
        return self._runner.paginate(call)

    def invoice_url(self, wallet_id: str, payment_id: str) -> str:
        """Where the invoice PDF (or card receipt) is: the 302's ``Location``."""
        path = f"{_w(wallet_id)}/payments/{segment(payment_id)}/invoice"
        return self._runner.run(Call("GET", path, None, parse=lambda r: r.headers["location"]))


class Limits(_Resource):
    def set(
        self,
        wallet_id: str,
        *,
        alert_threshold: Amount | None = None,
        allowed_limit: Amount | None = None,
        currency: str | None = None,
    ) -> m.LimitsOut:
        """The period's alert threshold and hard cap. Omitted fields are cleared."""
        body = body_of(
            alert_threshold=alert_threshold, allowed_limit=allowed_limit, currency=currency
        )
        return self._runner.run(Call("PUT", f"{_w(wallet_id)}/limits", m.LimitsOut, body))

    def get(self, wallet_id: str) -> m.LimitsOut:
        return self._runner.run(Call("GET", f"{_w(wallet_id)}/limits", m.LimitsOut))


class Alerts(_Resource):
    def set(self, wallet_id: str, *, thresholds: Sequence[dict[str, Any]] | None) -> m.AlertsOut:
        """``[{"type": "consumed_percent", "value": 80}, ...]``; None: the defaults."""
        body = {"thresholds": None if thresholds is None else list(thresholds)}
        return self._runner.run(Call("PUT", f"{_w(wallet_id)}/alerts", m.AlertsOut, body))

    def get(self, wallet_id: str) -> m.AlertsOut:
        return self._runner.run(Call("GET", f"{_w(wallet_id)}/alerts", m.AlertsOut))


class Budgets(_Resource):
    def set(self, wallet_id: str, member_id: str, *, budget: Amount | None) -> m.MemberBudgetOut:
        """A member's cap per period inside a shared wallet; None removes it."""
        path = f"{_w(wallet_id)}/members/{segment(member_id)}/budget"
        return self._runner.run(Call("PUT", path, m.MemberBudgetOut, {"budget": budget}))

    def get(self, wallet_id: str, member_id: str) -> m.MemberBudgetOut:
        path = f"{_w(wallet_id)}/members/{segment(member_id)}/budget"
        return self._runner.run(Call("GET", path, m.MemberBudgetOut))

    def list(self, wallet_id: str) -> m.MemberBudgetsOut:
        return self._runner.run(Call("GET", f"{_w(wallet_id)}/members", m.MemberBudgetsOut))


class Byok(_Resource):
    def set(self, user_id: str, *, provider: str, api_key: str) -> m.ByokOut:
        """Store the user's own provider key (encrypted; only its last four come back)."""
        body = body_of(provider=provider, api_key=api_key)
        path = f"/v1/users/{segment(user_id)}/byok"
        return self._runner.run(Call("PUT", path, m.ByokOut, body))

    def get(self, user_id: str) -> m.ByokOut:
        return self._runner.run(Call("GET", f"/v1/users/{segment(user_id)}/byok", m.ByokOut))

    def delete(self, user_id: str) -> None:
        path = f"/v1/users/{segment(user_id)}/byok"
        self._runner.run(Call("DELETE", path, None, parse=lambda _r: None))


class TestClockOps(_Resource):
    """The test clock: a test deployment's (``make run``, ``TestMode=true``) only; elsewhere
    both calls raise the 404 ``not-found`` error."""

    __test__ = False  # not a test class, whatever its name says

    def get(self) -> m.ClockOut:
        """Where the service's clock stands."""
        return self._runner.run(Call("GET", "/v1/test-clock", m.ClockOut))

    def advance(self, seconds: int) -> m.ClockOut:
        """Move the clock ``seconds`` forward; the schedules run up to then before it answers."""
        body = {"advance_seconds": seconds}
        return self._runner.run(Call("POST", "/v1/test-clock", m.ClockOut, body))


# operationId (docs/openapi.yaml) -> the method that calls it; a test checks every operation
# but Stripe's webhook (called by Stripe, never by a product) has one.
OPERATIONS = {
    "putWallet": "wallets.create",
    "getWallet": "wallets.get",
    "putBypass": "wallets.set_bypass",
    "reserve": "reservations.create",
    "commit": "reservations.commit",
    "release": "reservations.release",
    "charge": "charges.create",
    "quote": "charges.quote",
    "listGrants": "grants.list",
    "grant": "grants.create",
    "voidGrant": "grants.void",
    "adjust": "grants.adjust",
    "transfer": "grants.transfer",
    "createPromoCode": "promotions.create_code",
    "redeemPromoCode": "promotions.redeem",
    "refer": "promotions.refer",
    "listTransactions": "transactions.list",
    "exportTransactions": "transactions.export_csv",
    "getUsageSummary": "usage.summary",
    "getUsageSeries": "usage.series",
    "getOrgUsage": "usage.org",
    "listTopupOffers": "topups.offers",
    "createCheckout": "topups.checkout",
    "listPayments": "payments.list",
    "getPaymentInvoice": "payments.invoice_url",
    "putAutoTopup": "topups.set_auto",
    "getAutoTopup": "topups.get_auto",
    "putLimits": "limits.set",
    "getLimits": "limits.get",
    "putAlerts": "alerts.set",
    "getAlerts": "alerts.get",
    "listMemberBudgets": "budgets.list",
    "putMemberBudget": "budgets.set",
    "getMemberBudget": "budgets.get",
    "putByok": "byok.set",
    "getByok": "byok.get",
    "deleteByok": "byok.delete",
    "listPrices": "prices.get",
    "getTestClock": "test_clock.get",
    "advanceTestClock": "test_clock.advance",
}
