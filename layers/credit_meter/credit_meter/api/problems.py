"""The one place that maps domain errors to HTTP responses (RFC 9457 problem+json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from pydantic import ValidationError

from credit_meter.api.models import ProblemOut, dump
from credit_meter.core.errors import (
    ByokNotFound,
    Conflict,
    Contention,
    DomainError,
    Forbidden,
    GrantNotFound,
    InsufficientCredits,
    InvalidRequest,
    MalformedRequest,
    MemberBudgetNotFound,
    MemberBudgetReached,
    OrgNotFound,
    PayloadTooLarge,
    PaymentNotFound,
    PaymentProviderError,
    PromoCodeNotFound,
    ReservationNotFound,
    SpendingLimitReached,
    TopupsDisabled,
    Unauthenticated,
    UnsupportedMediaType,
    WalletNotFound,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

PROBLEM_JSON = "application/problem+json"

_STATUS: list[tuple[type[DomainError], int, str]] = [
    (MalformedRequest, 400, "Malformed request"),
    (Unauthenticated, 401, "Unauthenticated"),
    (Forbidden, 403, "Forbidden"),
    (InsufficientCredits, 402, "Insufficient credits"),
    (MemberBudgetReached, 403, "Member budget reached"),
    (SpendingLimitReached, 403, "Spending limit reached"),
    (WalletNotFound, 404, "Wallet not found"),
    (ReservationNotFound, 404, "Reservation not found"),
    (GrantNotFound, 404, "Grant not found"),
    (PromoCodeNotFound, 404, "Promo code not found"),
    (PaymentNotFound, 404, "Payment not found"),
    (MemberBudgetNotFound, 404, "Member budget not found"),
    (OrgNotFound, 404, "Organisation not found"),
    (ByokNotFound, 404, "Provider key not found"),
    (Conflict, 409, "Conflict"),
    (PayloadTooLarge, 413, "Payload too large"),
    (UnsupportedMediaType, 415, "Unsupported media type"),
    (InvalidRequest, 422, "Invalid request"),
    (TopupsDisabled, 501, "Top-ups are disabled"),
    (PaymentProviderError, 502, "Payment provider error"),
    (Contention, 503, "Busy, retry"),
]


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response[str]:
    body = ProblemOut(type=f"/problems/{code}", title=title, status=status, detail=detail, **extra)
    headers: dict[str, str] | None = None
    if status == 503:
        headers = {"Retry-After": "1"}
    elif status == 401:  # RFC 6750: how to authenticate
        headers = {"WWW-Authenticate": 'Bearer realm="credit-meter"'}
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(dump(body), separators=(",", ":")),
        headers=headers,
    )


def from_domain(error: DomainError) -> Response[str]:
    for kind, status, title in _STATUS:
        if isinstance(error, kind):
            extra: dict[str, Any] = {}
            if isinstance(error, InvalidRequest):
                extra["errors"] = [{"field": p.field, "message": p.message} for p in error.problems]
            if isinstance(error, InsufficientCredits):
                extra["available"] = error.available
                extra["requested"] = error.requested
            if isinstance(error, SpendingLimitReached):
                extra["limit"] = error.limit
                extra["remaining"] = error.remaining
            return problem(status, error.code, title, error.detail, **extra)
    return problem(400, error.code, "Bad request", error.detail)


def from_validation(error: ValidationError) -> Response[str]:
    problems = []
    for e in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in e["loc"]) or "body"
        message = e["msg"].removeprefix("Value error, ")
        problems.append({"field": field, "message": message})
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return problem(422, "invalid-request", "Invalid request", detail, errors=problems)


def not_found(path: str) -> Response[str]:
    return problem(404, "not-found", "Not found", f"no route for {path}")


def server_error() -> Response[str]:
    return problem(500, "internal-error", "Internal error", "something went wrong on our side")


def install(
    app: APIGatewayHttpResolver,
    logger: Logger,
    refused: Callable[[DomainError], None] | None = None,
) -> None:
    """Answer every error of an HTTP API function's resolver as problem+json: domain errors
    by the table above (``refused`` sees each first, to count it), invalid fields as 422 (the
    field names and messages, never the input), an unknown route as 404, anything else as a
    logged 500."""

    @app.exception_handler(DomainError)
    def domain_error(error: DomainError) -> Response[str]:
        if refused is not None:
            refused(error)
        return from_domain(error)

    @app.exception_handler(ValidationError)
    def invalid(error: ValidationError) -> Response[str]:
        return from_validation(error)

    @app.not_found
    def route_not_found(_: Exception) -> Response[str]:
        return not_found(app.current_event.path)

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return server_error()
