"""Typed exceptions, one per problem type of the API (docs/api.md, "Errors").

Every answer that is not a success becomes an :class:`APIError` subclass chosen by the
problem's ``type`` (``/problems/insufficient-credits`` -> :class:`InsufficientCredits`), or by
the status when the type is unknown, carrying the problem document's fields.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class CreditMeterError(Exception):
    """Anything the SDK raises."""


class APIConnectionError(CreditMeterError):
    """No answer from the API after every retry (connection refused, reset, dropped)."""


class APITimeoutError(APIConnectionError):
    """The API did not answer within the client's timeout, on every try."""


class HoldStateError(CreditMeterError):
    """A hold used out of order: committed twice, or committed after it was released."""


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class APIError(CreditMeterError):
    """An error answer. ``problem`` is the whole problem+json document (or the JSON body)."""

    def __init__(self, status: int, problem: dict[str, Any], headers: dict[str, str]) -> None:
        self.status = status
        self.problem = problem
        self.headers = headers
        self.type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or problem.get("message") or "")
        self.detail: str = str(problem.get("detail") or "")
        super().__init__(f"{status} {self.type}: {self.detail or self.title}")

    @property
    def code(self) -> str:
        """The problem type's last segment: ``insufficient-credits``."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]


class BadRequest(APIError):
    """400 malformed body, 413 too large, 415 not JSON."""


class Unauthorized(APIError):
    """401: no usable credentials (API Gateway's own answer or ``unauthenticated``)."""


class InsufficientCredits(APIError):
    """402: the hold or charge does not fit what is available; nothing was written."""

    def __init__(self, status: int, problem: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(status, problem, headers)
        self.available = _decimal(problem.get("available"))
        self.requested = _decimal(problem.get("requested"))


class Forbidden(APIError):
    """403: the token's role or scopes do not allow the call."""


class LimitReached(Forbidden):
    """403: a spending limit or a member's budget refused the debit."""

    def __init__(self, status: int, problem: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(status, problem, headers)
        self.limit = _decimal(problem.get("limit"))
        self.remaining = _decimal(problem.get("remaining"))


class SpendingLimitReached(LimitReached):
    """403 ``spending-limit-reached``: the wallet's cap for the period."""


class MemberBudgetReached(LimitReached):
    """403 ``member-budget-reached``: the member's budget for the period."""


class NotFound(APIError):
    """404: the wallet (or one of another organisation), reservation, grant, ... or route."""


class Conflict(APIError):
    """409: the request contradicts what already happened."""


class IdempotencyConflict(Conflict):
    """409 ``idempotency-key-reused``: the key was used with another body."""


class ReservationEnded(Conflict):
    """409 ``reservation-committed``/``-released``/``-expired``."""


class ValidationFailed(APIError):
    """422 ``invalid-request``; ``errors`` lists ``{field, message}``."""

    def __init__(self, status: int, problem: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(status, problem, headers)
        self.errors: list[dict[str, str]] = list(problem.get("errors") or [])


class RateLimited(APIError):
    """429: too many requests (after the SDK's retries)."""


class ServerError(APIError):
    """5xx (after the SDK's retries)."""


class PaymentProviderError(ServerError):
    """502 ``payment-provider-error``: Stripe refused or failed; nothing was written."""


class Contention(ServerError):
    """503 ``contention``: the wallet stayed too busy through the SDK's retries."""


_BY_CODE: dict[str, type[APIError]] = {
    "insufficient-credits": InsufficientCredits,
    "spending-limit-reached": SpendingLimitReached,
    "member-budget-reached": MemberBudgetReached,
    "idempotency-key-reused": IdempotencyConflict,
    "reservation-committed": ReservationEnded,
    "reservation-released": ReservationEnded,
    "reservation-expired": ReservationEnded,
    "payment-provider-error": PaymentProviderError,
    "contention": Contention,
}

_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: InsufficientCredits,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: ValidationFailed,
    429: RateLimited,
}


def error_for(status: int, problem: dict[str, Any], headers: dict[str, str]) -> APIError:
    """The exception for an error answer."""
    code = str(problem.get("type") or "").rstrip("/").rsplit("/", 1)[-1]
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(status, problem, headers)
