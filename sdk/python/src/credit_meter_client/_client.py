"""The synchronous client: ``CreditMeter(api_key=..., base_url=...)``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx

from credit_meter_client import models as m
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
from credit_meter_client._resources import (
    Amount,
    Charges,
    Grants,
    Promotions,
    Reservations,
    Transactions,
    Usage,
    Wallets,
)
from credit_meter_client._resources_more import (
    Alerts,
    Budgets,
    Byok,
    Limits,
    Payments,
    Prices,
    TestClockOps,
    Topups,
    UsageReports,
)
from credit_meter_client.hold import Hold


def settings(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """The key and base URL, from the arguments or ``CREDIT_METER_API_KEY``/``_BASE_URL``."""
    key = api_key or os.environ.get("CREDIT_METER_API_KEY") or ""
    url = base_url or os.environ.get("CREDIT_METER_BASE_URL") or ""
    if not url:
        raise ValueError("base_url is required (or set CREDIT_METER_BASE_URL)")
    return key, url.rstrip("/")


class CreditMeter:
    """Credit Meter's API. ``timeout`` in seconds per try; ``max_retries`` more tries after
    a connection error, a timeout, 429 or 5xx (see ``_base``). Close it, or use ``with``."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        user_agent: str | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        key, url = settings(api_key, base_url)
        self._headers = auth_headers(key, user_agent)
        self._retry = RetryPolicy(max_retries=max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)
        self._base_url = url
        self._catalog_models: list[str] | None = None
        self.wallets = Wallets(self)
        self.reservations = Reservations(self)
        self.charges = Charges(self)
        self.grants = Grants(self)
        self.promotions = Promotions(self)
        self.transactions = Transactions(self)
        self.usage = UsageReports(self)
        self.prices = Prices(self)
        self.test_clock = TestClockOps(self)
        self.topups = Topups(self)
        self.payments = Payments(self)
        self.limits = Limits(self)
        self.alerts = Alerts(self)
        self.budgets = Budgets(self)
        self.byok = Byok(self)

    def run(self, call: Call) -> Any:
        """Send one call, retrying as the policy allows; its model or a typed exception."""
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.request(
                    call.method, self._base_url + call.path, **call.request_kwargs(self._headers)
                )
            except httpx.TransportError as exc:
                if not self._retry.should_retry(call, attempt, exc):
                    raise connection_error(exc) from exc
            else:
                if not self._retry.should_retry(call, attempt, response):
                    return result(call, response)
            time.sleep(self._retry.delay(attempt, response))
            attempt += 1

    def paginate(self, call: Call) -> Iterator[Any]:
        """The items of every page, fetching the next one as the last is used up."""
        while True:
            page = self.run(call)
            yield from page.items
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
    ) -> Hold:
        """``with cm.hold(...) as hold: ...; hold.commit(...)`` (see ``hold.py``)."""
        request = {
            "feature": feature,
            "credits": credits,
            "usage": usage,
            "member_id": member_id,
            "expires_in_seconds": expires_in_seconds,
            "idempotency_key": idempotency_key,
        }
        return Hold(self, wallet_id, request)

    def charge(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.ChargeOut:
        """A one-shot debit (``charges.create``)."""
        return self.charges.create(
            wallet_id,
            feature=feature,
            credits=credits,
            usage=usage,
            member_id=member_id,
            idempotency_key=idempotency_key,
        )

    def catalog_models(self) -> list[str]:
        """The catalog's model names (read once per client, for ``commit_from_response``)."""
        if self._catalog_models is None:
            self._catalog_models = [t.model for t in self.prices.get().models]
        return self._catalog_models

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CreditMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
