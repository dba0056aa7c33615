"""The asyncio client: ``AsyncCreditMeter``, the same surface as ``CreditMeter``, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from credit_meter_client import models as m
from credit_meter_client._async_resources import (
    AsyncAlerts,
    AsyncBudgets,
    AsyncByok,
    AsyncCharges,
    AsyncGrants,
    AsyncLimits,
    AsyncPayments,
    AsyncPrices,
    AsyncPromotions,
    AsyncReservations,
    AsyncTestClockOps,
    AsyncTopups,
    AsyncTransactions,
    AsyncUsageReports,
    AsyncWallets,
)
from credit_meter_client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Call,
    RetryPolicy,
    auth_headers,
    connection_error,
    next_page,
    result,
)
from credit_meter_client._client import settings
from credit_meter_client._resources import Amount, Usage
from credit_meter_client.hold import AsyncHold


class AsyncCreditMeter:
    """Credit Meter's API for asyncio; see :class:`CreditMeter` for the arguments."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        user_agent: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        key, url = settings(api_key, base_url)
        self._headers = auth_headers(key, user_agent)
        self._retry = RetryPolicy(max_retries=max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._base_url = url
        self._catalog_models: list[str] | None = None
        self.wallets = AsyncWallets(self)
        self.reservations = AsyncReservations(self)
        self.charges = AsyncCharges(self)
        self.grants = AsyncGrants(self)
        self.promotions = AsyncPromotions(self)
        self.transactions = AsyncTransactions(self)
        self.usage = AsyncUsageReports(self)
        self.prices = AsyncPrices(self)
        self.test_clock = AsyncTestClockOps(self)
        self.topups = AsyncTopups(self)
        self.payments = AsyncPayments(self)
        self.limits = AsyncLimits(self)
        self.alerts = AsyncAlerts(self)
        self.budgets = AsyncBudgets(self)
        self.byok = AsyncByok(self)

    async def run(self, call: Call) -> Any:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.request(
                    call.method, self._base_url + call.path, **call.request_kwargs(self._headers)
                )
            except httpx.TransportError as exc:
                if not self._retry.should_retry(call, attempt, exc):
                    raise connection_error(exc) from exc
            else:
                if not self._retry.should_retry(call, attempt, response):
                    return result(call, response)
            await asyncio.sleep(self._retry.delay(attempt, response))
            attempt += 1

    async def paginate(self, call: Call) -> AsyncIterator[Any]:
        while True:
            page = await self.run(call)
            for item in page.items:
                yield item
            call = next_page(call, page.next_cursor)
            if not page.next_cursor:
                return

    def hold(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        expires_in_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncHold:
        """``async with cm.hold(...) as hold: ...; await hold.commit(...)``."""
        request = {
            "feature": feature,
            "credits": credits,
            "usage": usage,
            "member_id": member_id,
            "expires_in_seconds": expires_in_seconds,
            "idempotency_key": idempotency_key,
        }
        return AsyncHold(self, wallet_id, request)

    async def charge(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.ChargeOut:
        return await self.charges.create(
            wallet_id,
            feature=feature,
            credits=credits,
            usage=usage,
            member_id=member_id,
            idempotency_key=idempotency_key,
        )

    async def catalog_models(self) -> list[str]:
        if self._catalog_models is None:
            self._catalog_models = [t.model for t in (await self.prices.get()).models]
        return self._catalog_models

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCreditMeter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
