"""``with cm.hold(...)``: reserve credits, then commit the actual cost or release the hold.

Leaving the block without a commit releases the hold, and so does an exception (a timeout,
a cancellation, Ctrl-C): the exception goes on unchanged. Should the release itself fail (the
API unreachable), the hold expires on the server after ``expires_in_seconds`` anyway.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from credit_meter_client import models as m
from credit_meter_client.errors import HoldStateError
from credit_meter_client.tokens import catalog_model, token_usage

if TYPE_CHECKING:
    from credit_meter_client._async_client import AsyncCreditMeter
    from credit_meter_client._client import CreditMeter

log = logging.getLogger("credit_meter_client")


class _HoldState:
    def __init__(self, wallet_id: str, request: dict[str, Any]) -> None:
        self.wallet_id = wallet_id
        self._request = request
        self.reservation: m.ReservationOut | None = None
        self.outcome: m.CommitOut | m.ReleaseOut | None = None

    @property
    def id(self) -> str:
        if self.reservation is None:
            raise HoldStateError("the hold is made on entering its with block")
        return self.reservation.reservation_id

    def _check_open(self) -> str:
        if self.outcome is not None:
            raise HoldStateError(f"the hold {self.id} is already {self.outcome.status}")
        return self.id

    def _usage_lines(
        self, response: Any, model: str | None, known: list[str], cached_input_meter: str | None
    ) -> list[dict[str, Any]]:
        counts = token_usage(response)
        name = model or catalog_model(counts.model, known)
        return counts.lines(model=name, cached_input_meter=cached_input_meter)


class Hold(_HoldState):
    def __init__(self, client: CreditMeter, wallet_id: str, request: dict[str, Any]) -> None:
        super().__init__(wallet_id, request)
        self._client = client

    def __enter__(self) -> Hold:
        self.reservation = self._client.reservations.create(self.wallet_id, **self._request)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.reservation is None or self.outcome is not None:
            return
        try:
            self.release()
        except Exception:
            if exc is None:
                raise
            log.warning("could not release hold %s; it expires on its own", self.id, exc_info=True)

    def commit(self, *, credits: Any = None, usage: Any = None) -> m.CommitOut:
        """Charge the actual cost (``credits`` or ``usage``; neither: what was held)."""
        rid = self._check_open()
        out = self._client.reservations.commit(self.wallet_id, rid, credits=credits, usage=usage)
        self.outcome = out
        return out

    def commit_from_response(
        self, response: Any, *, model: str | None = None, cached_input_meter: str | None = None
    ) -> m.CommitOut:
        """Commit the token usage of an OpenAI, Anthropic or Google response (object or dict).
        ``model``: the catalog's name, when the provider's does not start with one."""
        known = [] if model else self._client.catalog_models()
        return self.commit(usage=self._usage_lines(response, model, known, cached_input_meter))

    def release(self) -> m.ReleaseOut:
        rid = self._check_open()
        out = self._client.reservations.release(self.wallet_id, rid)
        self.outcome = out
        return out


class AsyncHold(_HoldState):
    def __init__(self, client: AsyncCreditMeter, wallet_id: str, request: dict[str, Any]) -> None:
        super().__init__(wallet_id, request)
        self._client = client

    async def __aenter__(self) -> AsyncHold:
        self.reservation = await self._client.reservations.create(self.wallet_id, **self._request)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.reservation is None or self.outcome is not None:
            return
        try:
            await self.release()
        except Exception:
            if exc is None:
                raise
            log.warning("could not release hold %s; it expires on its own", self.id, exc_info=True)

    async def commit(self, *, credits: Any = None, usage: Any = None) -> m.CommitOut:
        rid = self._check_open()
        out = await self._client.reservations.commit(
            self.wallet_id, rid, credits=credits, usage=usage
        )
        self.outcome = out
        return out

    async def commit_from_response(
        self, response: Any, *, model: str | None = None, cached_input_meter: str | None = None
    ) -> m.CommitOut:
        known = [] if model else await self._client.catalog_models()
        return await self.commit(
            usage=self._usage_lines(response, model, known, cached_input_meter)
        )

    async def release(self) -> m.ReleaseOut:
        rid = self._check_open()
        out = await self._client.reservations.release(self.wallet_id, rid)
        self.outcome = out
        return out
