"""What every write carries for idempotency, and the error a reused key gets."""

from __future__ import annotations

from dataclasses import dataclass

from credit_meter.core.errors import IdempotencyConflict


@dataclass(frozen=True, slots=True)
class Request:
    """What every write carries for idempotency: the client's key and the body's digest."""

    request_hash: str
    idempotency_key: str | None = None


def key_reused() -> IdempotencyConflict:
    return IdempotencyConflict("Idempotency-Key was used with another request body")
