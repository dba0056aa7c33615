"""Requests, retries and answers, shared by the sync and the async client.

Retries: a connection error, a timeout, 429 and 5xx are tried again with exponential backoff
and jitter (or the answer's ``Retry-After``). A write is retried only when that is safe: it
carries an ``Idempotency-Key`` (made once per call, so every try sends the same one and the
server applies it once), or it is a PUT, or the request never reached the server.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from credit_meter_client import errors
from credit_meter_client._model import Model

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
USER_AGENT = "credit-meter-python"


def segment(value: str) -> str:
    """One path segment, percent-encoded (a user id may hold ``/`` or ``|``)."""
    return quote(str(value), safe="")


def _jsonable(value: Any) -> Any:
    # Decimals travel as strings so that no amount ever passes through a binary float.
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def body_of(**fields: Any) -> dict[str, Any]:
    """A request body from keyword arguments, leaving out those not given (None)."""
    return {k: v for k, v in fields.items() if v is not None}


def new_key(given: str | None = None) -> str:
    """The call's Idempotency-Key: the caller's, or a new one made once for all its tries."""
    return given or f"cm-{uuid.uuid4().hex}"


@dataclass
class Call:
    """One API operation: what to send and what model to read back (None: no body)."""

    method: str
    path: str
    model: type[Model] | None
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    idempotency_key: str | None = None
    parse: Callable[[httpx.Response], Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def safe_to_retry(self) -> bool:
        return self.method in ("GET", "PUT", "DELETE") or self.idempotency_key is not None

    def request_kwargs(self, headers: dict[str, str]) -> dict[str, Any]:
        headers = {**headers, **self.headers}
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        kwargs: dict[str, Any] = {"headers": headers}
        if self.params:
            kwargs["params"] = {k: _param(v) for k, v in self.params.items() if v is not None}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
            kwargs["content"] = json.dumps(_jsonable(self.body)).encode()
        return kwargs


def next_page(call: Call, cursor: str | None) -> Call:
    return dataclasses.replace(call, params={**(call.params or {}), "cursor": cursor})


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = 0.25
    max_backoff: float = 8.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                return min(float(retry_after), self.max_backoff)
        base = min(self.backoff * (2**attempt), self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)  # jitter spreads a herd of retries

    def should_retry(self, call: Call, attempt: int, outcome: Any) -> bool:
        """``outcome``: a response, or the transport exception raised for this try."""
        if attempt >= self.max_retries:
            return False
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in RETRY_STATUSES:
                return False
            # 429 and 503 contention are refused before anything is written.
            return outcome.status_code in (429, 503) or call.safe_to_retry
        not_sent = isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout)
        return not_sent or call.safe_to_retry


def auth_headers(api_key: str, user_agent: str | None) -> dict[str, str]:
    if not api_key:
        raise ValueError("api_key is required (a Credit Meter API key or bearer token)")
    agent = USER_AGENT if not user_agent else f"{user_agent} {USER_AGENT}"
    return {"Authorization": f"Bearer {api_key}", "User-Agent": agent, "Accept": "application/json"}


def connection_error(exc: httpx.TransportError) -> errors.APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return errors.APITimeoutError(f"timed out: {exc}")
    return errors.APIConnectionError(f"connection failed: {exc}")


def result(call: Call, response: httpx.Response) -> Any:
    """The call's model from a success, or the typed exception for anything else."""
    status = response.status_code
    if status >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:500]}
        if not isinstance(problem, dict):
            problem = {"detail": str(problem)}
        raise errors.error_for(status, problem, dict(response.headers))
    if call.parse is not None:
        return call.parse(response)
    assert call.model is not None
    return call.model.from_dict(response.json())


@dataclass(frozen=True)
class CsvPage:
    """One CSV file of the ledger and the cursor to the next (None: the last)."""

    text: str
    next_cursor: str | None

    @classmethod
    def of(cls, response: httpx.Response) -> CsvPage:
        return cls(response.text, response.headers.get("x-next-cursor") or None)


class _Resource:
    # A CreditMeter or an AsyncCreditMeter: the async resources await what ``run`` returns.
    def __init__(self, runner: Any) -> None:
        self._runner = runner
