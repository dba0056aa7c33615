"""Credit Meter's Python SDK: meter an AI call against a prepaid credit wallet.

from credit_meter_client import CreditMeter
cm = CreditMeter(api_key="cm_sk_...", base_url="https://credits.example.com")
with cm.hold("w1", credits=Decimal("5"), feature="chat") as hold:
    hold.commit_from_response(call_model())
"""

from credit_meter_client import models
from credit_meter_client._async_client import AsyncCreditMeter
from credit_meter_client._base import CsvPage
from credit_meter_client._client import CreditMeter
from credit_meter_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequest,
    Conflict,
    Contention,
    CreditMeterError,
    Forbidden,
    HoldStateError,
    IdempotencyConflict,
    InsufficientCredits,
    LimitReached,
    MemberBudgetReached,
    NotFound,
    PaymentProviderError,
    RateLimited,
    ReservationEnded,
    ServerError,
    SpendingLimitReached,
    Unauthorized,
    ValidationFailed,
)
from credit_meter_client.hold import AsyncHold, Hold
from credit_meter_client.tokens import TokenUsage, token_usage

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncCreditMeter",
    "AsyncHold",
    "BadRequest",
    "Conflict",
    "Contention",
    "CreditMeter",
    "CreditMeterError",
    "CsvPage",
    "Forbidden",
    "Hold",
    "HoldStateError",
    "IdempotencyConflict",
    "InsufficientCredits",
    "LimitReached",
    "MemberBudgetReached",
    "NotFound",
    "PaymentProviderError",
    "RateLimited",
    "ReservationEnded",
    "ServerError",
    "SpendingLimitReached",
    "TokenUsage",
    "Unauthorized",
    "ValidationFailed",
    "models",
    "token_usage",
]
