"""The one source of time. Tests replace it with :func:`set_clock`; code calls :func:`now`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

_clock: Callable[[], float] = time.time


def now_ts() -> float:
    """Seconds since the epoch, as a float."""
    return _clock()


def now() -> datetime:
    return datetime.fromtimestamp(_clock(), tz=UTC)


def set_clock(clock: Callable[[], float] | None) -> None:
    """Install a clock (``None`` restores the real one)."""
    global _clock
    _clock = clock or time.time


def iso(ts: float) -> str:
    """RFC 3339 UTC with millisecond precision: ``2026-11-21T05:09:00.000Z``."""
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
