"""The API's operations for the asyncio client, generated from ``_resources.py`` and
``_resources_more.py`` by ``tools/gen_async.py``: do not edit by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

from credit_meter_client import models as m
from credit_meter_client._base import Call, CsvPage, _Resource, body_of, new_key, segment
from credit_meter_client._resources import Amount, Usage, _iso, _w


class AsyncWallets(_Resource):
    async def create(
        self,
        wallet_id: str,
        *,
        plan: str,
        allowance: Amount | None = None,
        anchor_day: int | None = None,
        org_id: str | None = None,
    ) -> m.WalletOut:
        """Create the wallet, or change its plan (PUT: the same call does both)."""
        body = body_of(plan=plan, allowance=allowance, anchor_day=anchor_day, org_id=org_id)
        return await self._runner.run(Call("PUT", _w(wallet_id), m.WalletOut, body))

    change_plan = create

    async def get(self, wallet_id: str) -> m.WalletOut:
        return await self._runner.run(Call("GET", _w(wallet_id), m.WalletOut))

    async def set_bypass(self, wallet_id: str, *, enabled: bool) -> m.WalletOut:
        body = body_of(enabled=enabled)
        return await self._runner.run(Call("PUT", f"{_w(wallet_id)}/bypass", m.WalletOut, body))


class AsyncReservations(_Resource):
    async def create(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        expires_in_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> m.ReservationOut:
        body = body_of(
            feature=feature,
            credits=credits,
            usage=usage,
            member_id=member_id,
            expires_in_seconds=expires_in_seconds,
        )
        path = f"{_w(wallet_id)}/reservations"
        call = Call("POST", path, m.ReservationOut, body, idempotency_key=new_key(idempotency_key))
        return await self._runner.run(call)

    async def commit(
        self,
        wallet_id: str,
        reservation_id: str,
        *,
        credits: Amount | None = None,
        usage: Usage | None = None,
        idempotency_key: str | None = None,
    ) -> m.CommitOut:
        """Charge the actual cost (``credits`` or ``usage``; neither: what was held)."""
        path = f"{_w(wallet_id)}/reservations/{segment(reservation_id)}/commit"
        body = body_of(credits=credits, usage=usage)
        call = Call("POST", path, m.CommitOut, body, idempotency_key=new_key(idempotency_key))
        return await self._runner.run(call)

    async def release(
        self, wallet_id: str, reservation_id: str, *, idempotency_key: str | None = None
    ) -> m.ReleaseOut:
        path = f"{_w(wallet_id)}/reservations/{segment(reservation_id)}/release"
        call = Call("POST", path, m.ReleaseOut, {}, idempotency_key=new_key(idempotency_key))
        return await self._runner.run(call)


class AsyncCharges(_Resource):
    async def create(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.ChargeOut:
        body = body_of(feature=feature, credits=credits, usage=usage, member_id=member_id)
        call = Call(
            "POST",
            f"{_w(wallet_id)}/charges",
            m.ChargeOut,
            body,
            idempotency_key=new_key(idempotency_key),
        )
        return await self._runner.run(call)

    async def quote(self, wallet_id: str, *, usage: Usage) -> m.QuoteOut:
        body = body_of(usage=usage)
        return await self._runner.run(Call("POST", f"{_w(wallet_id)}/quote", m.QuoteOut, body))


class AsyncGrants(_Resource):
    async def create(
        self,
        wallet_id: str,
        *,
        credits: Amount,
        source: str,
        expires_at: datetime | str | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> m.GrantOut:
        body = body_of(
            credits=credits, source=source, expires_at=_iso(expires_at), priority=priority
        )
        call = Call(
            "POST",
            f"{_w(wallet_id)}/grants",
            m.GrantOut,
            body,
            idempotency_key=new_key(idempotency_key),
        )
        return await self._runner.run(call)

    async def page(
        self, wallet_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> m.GrantsOut:
        params = {"limit": limit, "cursor": cursor}
        return await self._runner.run(Call("GET", f"{_w(wallet_id)}/grants", m.GrantsOut, None, params))

    def list(self, wallet_id: str, *, limit: int | None = None) -> AsyncIterator[m.GrantLineOut]:
        """Every grant, newest first, following the cursors page by page."""
        call = Call("GET", f"{_w(wallet_id)}/grants", m.GrantsOut, None, {"limit": limit})
        return self._runner.paginate(call)

    async def void(self, wallet_id: str, grant_id: str) -> m.VoidOut:
        path = f"{_w(wallet_id)}/grants/{segment(grant_id)}/void"
        return await self._runner.run(Call("POST", path, m.VoidOut, {}))

    async def adjust(
        self,
        wallet_id: str,
        *,
        credits: Amount,
        reason: str,
        idempotency_key: str | None = None,
    ) -> m.AdjustmentOut:
        """A manual correction: positive grants, negative debits (may go below zero)."""
        body = body_of(credits=credits, reason=reason)
        path = f"{_w(wallet_id)}/adjustments"
        call = Call("POST", path, m.AdjustmentOut, body, idempotency_key=new_key(idempotency_key))
        return await self._runner.run(call)

    async def transfer(
        self,
        wallet_id: str,
        *,
        to_wallet_id: str,
        credits: Amount,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.TransferOut:
        body = body_of(to_wallet_id=to_wallet_id, credits=credits, reason=reason)
        path = f"{_w(wallet_id)}/transfers"
        call = Call("POST", path, m.TransferOut, body, idempotency_key=new_key(idempotency_key))
        return await self._runner.run(call)


class AsyncPromotions(_Resource):
    async def create_code(
        self,
        code: str,
        *,
        credits: Amount,
        expires_at: datetime | str | None = None,
        credits_expire_at: datetime | str | None = None,
        credits_expire_in_days: int | None = None,
        max_redemptions: int | None = None,
    ) -> m.PromoCodeOut:
        body = body_of(
            code=code,
            credits=credits,
            expires_at=_iso(expires_at),
            credits_expire_at=_iso(credits_expire_at),
            credits_expire_in_days=credits_expire_in_days,
            max_redemptions=max_redemptions,
        )
        return await self._runner.run(Call("POST", "/v1/promo-codes", m.PromoCodeOut, body))

    async def redeem(
        self, wallet_id: str, *, code: str, idempotency_key: str | None = None
    ) -> m.GrantOut:
        path = f"{_w(wallet_id)}/redeem"
        call = Call(
            "POST", path, m.GrantOut, body_of(code=code), idempotency_key=new_key(idempotency_key)
        )
        return await self._runner.run(call)

    async def refer(self, wallet_id: str, *, referrer_wallet_id: str) -> m.ReferralOut:
        body = body_of(referrer_wallet_id=referrer_wallet_id)
        return await self._runner.run(Call("POST", f"{_w(wallet_id)}/referral", m.ReferralOut, body))


class AsyncTransactions(_Resource):
    async def page(
        self,
        wallet_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        day: date | str | None = None,
        type: str | None = None,
        member_id: str | None = None,
        feature: str | None = None,
    ) -> m.TransactionsOut:
        params = body_of(
            limit=limit, cursor=cursor, day=_iso(day), type=type, member_id=member_id,
            feature=feature,
        )  # fmt: skip
        path = f"{_w(wallet_id)}/transactions"
        return await self._runner.run(Call("GET", path, m.TransactionsOut, None, params))

    def list(
        self,
        wallet_id: str,
        *,
        limit: int | None = None,
        day: date | str | None = None,
        type: str | None = None,
        member_id: str | None = None,
        feature: str | None = None,
    ) -> AsyncIterator[m.TransactionOut]:
        """The ledger, newest first, following the cursors page by page."""
        params = body_of(
            limit=limit, day=_iso(day), type=type, member_id=member_id, feature=feature
        )
        path = f"{_w(wallet_id)}/transactions"
        return self._runner.paginate(Call("GET", path, m.TransactionsOut, None, params))

    async def export_csv(
        self,
        wallet_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        day: date | str | None = None,
        type: str | None = None,
        member_id: str | None = None,
        feature: str | None = None,
    ) -> CsvPage:
        """One CSV file of the ledger (up to 1,000 rows) and the cursor to the next."""
        params = body_of(
            limit=limit, cursor=cursor, day=_iso(day), type=type, member_id=member_id,
            feature=feature,
        )  # fmt: skip
        path = f"{_w(wallet_id)}/transactions.csv"
        return await self._runner.run(Call("GET", path, None, None, params, parse=CsvPage.of))


class AsyncUsageReports(_Resource):
    async def summary(self, wallet_id: str) -> m.SummaryOut:
        path = f"{_w(wallet_id)}/usage/summary"
        return await self._runner.run(Call("GET", path, m.SummaryOut))

    async def series(
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
        return await self._runner.run(Call("GET", path, m.SeriesOut, None, params))

    async def org(
        self, org_id: str, *, from_: date | str | None = None, to: date | str | None = None
    ) -> m.OrgUsageOut:
        params = {"from": _iso(from_), "to": _iso(to)}
        path = f"/v1/orgs/{segment(org_id)}/usage"
        return await self._runner.run(Call("GET", path, m.OrgUsageOut, None, params))


class AsyncPrices(_Resource):
    async def get(self) -> m.PricesOut:
        """Meters, model tiers and plans."""
        return await self._runner.run(Call("GET", "/v1/prices", m.PricesOut))


class AsyncTopups(_Resource):
    async def offers(self) -> m.OffersOut:
        return await self._runner.run(Call("GET", "/v1/topups/offers", m.OffersOut))

    async def checkout(
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
        return await self._runner.run(call)

    async def set_auto(
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
        return await self._runner.run(Call("PUT", path, m.AutoTopupOut, body))

    async def get_auto(self, wallet_id: str) -> m.AutoTopupOut:
        return await self._runner.run(Call("GET", f"{_w(wallet_id)}/auto-topup", m.AutoTopupOut))


class AsyncPayments(_Resource):
    async def page(
        self, wallet_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> m.PaymentsOut:
        params = {"limit": limit, "cursor": cursor}
        path = f"{_w(wallet_id)}/payments"
        return await self._runner.run(Call("GET", path, m.PaymentsOut, None, params))

    def list(self, wallet_id: str, *, limit: int | None = None) -> AsyncIterator[m.PaymentOut]:
        call = Call("GET", f"{_w(wallet_id)}/payments", m.PaymentsOut, None, {"limit": limit})
        return self._runner.paginate(call)

    async def invoice_url(self, wallet_id: str, payment_id: str) -> str:
        """Where the invoice PDF (or card receipt) is: the 302's ``Location``."""
        path = f"{_w(wallet_id)}/payments/{segment(payment_id)}/invoice"
        return await self._runner.run(Call("GET", path, None, parse=lambda r: r.headers["location"]))


class AsyncLimits(_Resource):
    async def set(
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
        return await self._runner.run(Call("PUT", f"{_w(wallet_id)}/limits", m.LimitsOut, body))

    async def get(self, wallet_id: str) -> m.LimitsOut:
        return await self._runner.run(Call("GET", f"{_w(wallet_id)}/limits", m.LimitsOut))


class AsyncAlerts(_Resource):
    async def set(self, wallet_id: str, *, thresholds: Sequence[dict[str, Any]] | None) -> m.AlertsOut:
        """``[{"type": "consumed_percent", "value": 80}, ...]``; None: the defaults."""
        body = {"thresholds": None if thresholds is None else list(thresholds)}
        return await self._runner.run(Call("PUT", f"{_w(wallet_id)}/alerts", m.AlertsOut, body))

    async def get(self, wallet_id: str) -> m.AlertsOut:
        return await self._runner.run(Call("GET", f"{_w(wallet_id)}/alerts", m.AlertsOut))


class AsyncBudgets(_Resource):
    async def set(self, wallet_id: str, member_id: str, *, budget: Amount | None) -> m.MemberBudgetOut:
        """A member's cap per period inside a shared wallet; None removes it."""
        path = f"{_w(wallet_id)}/members/{segment(member_id)}/budget"
        return await self._runner.run(Call("PUT", path, m.MemberBudgetOut, {"budget": budget}))

    async def get(self, wallet_id: str, member_id: str) -> m.MemberBudgetOut:
        path = f"{_w(wallet_id)}/members/{segment(member_id)}/budget"
        return await self._runner.run(Call("GET", path, m.MemberBudgetOut))

    async def list(self, wallet_id: str) -> m.MemberBudgetsOut:
        return await self._runner.run(Call("GET", f"{_w(wallet_id)}/members", m.MemberBudgetsOut))


class AsyncByok(_Resource):
    async def set(self, user_id: str, *, provider: str, api_key: str) -> m.ByokOut:
        """Store the user's own provider key (encrypted; only its last four come back)."""
        body = body_of(provider=provider, api_key=api_key)
        path = f"/v1/users/{segment(user_id)}/byok"
        return await self._runner.run(Call("PUT", path, m.ByokOut, body))

    async def get(self, user_id: str) -> m.ByokOut:
        return await self._runner.run(Call("GET", f"/v1/users/{segment(user_id)}/byok", m.ByokOut))

    async def delete(self, user_id: str) -> None:
        path = f"/v1/users/{segment(user_id)}/byok"
        await self._runner.run(Call("DELETE", path, None, parse=lambda _r: None))


class AsyncTestClockOps(_Resource):
    """The test clock: a test deployment's (``make run``, ``TestMode=true``) only; elsewhere
    both calls raise the 404 ``not-found`` error."""

    __test__ = False  # not a test class, whatever its name says

    async def get(self) -> m.ClockOut:
        """Where the service's clock stands."""
        return await self._runner.run(Call("GET", "/v1/test-clock", m.ClockOut))

    async def advance(self, seconds: int) -> m.ClockOut:
        """Move the clock ``seconds`` forward; the schedules run up to then before it answers."""
        body = {"advance_seconds": seconds}
        return await self._runner.run(Call("POST", "/v1/test-clock", m.ClockOut, body))
