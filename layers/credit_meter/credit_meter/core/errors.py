"""Domain errors. They know nothing of HTTP; :mod:`credit_meter.api.problems` maps them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str


class DomainError(Exception):
    """Base of the errors the service answers with on purpose: what a caller did wrong, or
    (``Contention``) a request to try again."""

    code = "domain-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedRequest(DomainError):
    """The request body is not the JSON document it should be."""

    code = "malformed-request"


class InvalidRequest(DomainError):
    """Well-formed, but some fields are wrong."""

    code = "invalid-request"

    def __init__(self, problems: list[FieldProblem], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class UnsupportedMediaType(DomainError):
    code = "unsupported-media-type"


class PayloadTooLarge(DomainError):
    code = "payload-too-large"


class Unauthenticated(DomainError):
    """No valid credentials came with the request (the JWT authorizer's claims are missing or
    incomplete)."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """The caller is known, but its role or scopes do not allow this route (or this member's
    data). Never used to say that another tenant's wallet exists: that is a not-found."""

    code = "forbidden"


class WalletNotFound(DomainError):
    code = "wallet-not-found"


class ReservationNotFound(DomainError):
    code = "reservation-not-found"


class GrantNotFound(DomainError):
    code = "grant-not-found"


class PromoCodeNotFound(DomainError):
    code = "promo-code-not-found"


class PaymentNotFound(DomainError):
    code = "payment-not-found"


class MemberBudgetNotFound(DomainError):
    code = "member-budget-not-found"


class OrgNotFound(DomainError):
    code = "organisation-not-found"


class ByokNotFound(DomainError):
    """The user has no provider key stored."""

    code = "byok-not-found"


class PaymentProviderError(DomainError):
    """The payment provider refused or failed a request we made on the caller's behalf."""

    code = "payment-provider-error"


class TopupsDisabled(DomainError):
    """The deployment has no Stripe keys: nothing can be bought (``TOPUPS_ENABLED=false``)."""

    code = "topups-disabled"


class InsufficientCredits(DomainError):
    code = "insufficient-credits"

    def __init__(self, detail: str, available: Decimal, requested: Decimal) -> None:
        super().__init__(detail)
        self.available = available
        self.requested = requested


class SpendingLimitReached(DomainError):
    """The wallet's allowed spending for the period would be passed (an owner's hard cap)."""

    code = "spending-limit-reached"

    def __init__(self, detail: str, limit: Decimal, remaining: Decimal) -> None:
        super().__init__(detail)
        self.limit = limit
        self.remaining = remaining


class MemberBudgetReached(SpendingLimitReached):
    """A member's budget inside a shared wallet would be passed."""

    code = "member-budget-reached"


class Conflict(DomainError):
    """The request contradicts what already happened (a hold that already ended, say)."""

    code = "conflict"

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        if code:
            self.code = code


class IdempotencyConflict(Conflict):
    code = "idempotency-key-reused"


class Contention(DomainError):
    """A write lost too many optimistic races in a row; safe to retry."""

    code = "contention"


def no_wallet(wallet_id: str) -> WalletNotFound:
    return WalletNotFound(f"wallet {wallet_id!r} does not exist")
