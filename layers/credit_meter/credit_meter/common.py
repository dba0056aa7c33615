"""What every operation module shares: the request's idempotency facts, time stamps, cursors
and the errors that read the same wherever they are raised."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from credit_meter import clock
from credit_meter.errors import FieldProblem, IdempotencyConflict, InvalidRequest, WalletNotFound

# Operation records answer retries for this long, then TTL removes them (the ledger keeps the
# history). Grant records stay: they describe the grant.
RECORD_TTL_SECONDS = 30 * 86400


@dataclass(frozen=True, slots=True)
class Request:
    """What every write carries for idempotency: the client's key and the body's digest."""

    request_hash: str
    idempotency_key: str | None = None


def now_ms() -> int:
    return int(clock.now_ts() * 1000)


def record_ttl() -> int:
    return int(clock.now_ts()) + RECORD_TTL_SECONDS


def no_wallet(wallet_id: str) -> WalletNotFound:
    return WalletNotFound(f"wallet {wallet_id!r} does not exist")


def key_reused() -> IdempotencyConflict:
    return IdempotencyConflict("Idempotency-Key was used with another request body")


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    try:
        sort_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        sort_key = ""
    if not sort_key.startswith(prefix) or len(sort_key) > 64:
        raise InvalidRequest([FieldProblem("cursor", "is not a cursor this list returned")])
    return sort_key
