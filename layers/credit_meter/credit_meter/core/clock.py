"""The one source of time. Tests replace it with :func:`set_clock`; code calls :func:`now`.

A test clock (test mode only, docs/data-model.md "Test clock") moves it forward by an offset
that each invocation sets with :func:`set_offset`; outside test mode the offset stays 0."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

_clock: Callable[[], float] = time.time
_offset = 0


def now_ts() -> float:
    """Seconds since the epoch, as a float."""
    return _clock() + _offset


def now() -> datetime:
    return datetime.fromtimestamp(now_ts(), tz=UTC)


def set_clock(clock: Callable[[], float] | None) -> None:
    """Install a clock (``None`` restores the real one)."""
    global _clock
    _clock = clock or time.time


def set_offset(seconds: int) -> None:
    """Move the clock ``seconds`` ahead of the real (or installed) one; 0 puts it back."""
    global _offset
    _offset = seconds


def offset() -> int:
    return _offset


def iso(ts: float) -> str:
    """RFC 3339 UTC with millisecond precision: ``2026-11-21T05:09:00.000Z``."""
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
