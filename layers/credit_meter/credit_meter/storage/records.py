"""Time stamps of stored records, and how long operation records are kept."""

from __future__ import annotations

from credit_meter.core import clock

# Operation records answer retries for this long, then TTL removes them (the ledger keeps the
# history). Grant records stay: they describe the grant.
RECORD_TTL_SECONDS = 30 * 86400


def now_ms() -> int:
    return int(clock.now_ts() * 1000)


def record_ttl() -> int:
    return int(clock.now_ts()) + RECORD_TTL_SECONDS
