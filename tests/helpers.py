"""What many test modules share: reading a handler's answer, a frozen clock, importing a
function's module, and the deadlines of the concurrency tests.

* :func:`ok` and :func:`problem`: the answer is the expected success (JSON) or the expected
  refusal (an RFC 9457 problem document); both return the parsed body. They take the unit
  tests' ``(status, headers, body)`` and the integration tests' ``(status, body)`` alike.
  :func:`pages`: every item of a paginated list.
* :class:`FakeClock` and :func:`frozen_clock`: the service's clock, frozen and moved by hand.
* :func:`handler_module`: a function's ``app`` module, imported with the settings Powertools
  reads at import.
* :data:`DEADLINE`, :func:`wait_for`, :func:`wait_until` and :func:`results`: how long a
  concurrency test waits for other threads or processes before it fails, and waits that say
  what never happened.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures as cf
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from credit_meter.core import clock

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"

# The functions' metrics namespace (template.yaml), for modules imported before it was set.
METRICS_NAMESPACE = "CreditMeter"

# Seconds a test waits for threads, worker processes or DynamoDB Local before it fails. On a
# quiet machine every wait ends within a few seconds; a generous bound keeps a busy machine
# (other test runs, a cold JVM) from failing a test that is only slow. CM_TEST_DEADLINE
# raises or lowers it.
DEADLINE = float(os.environ.get("CM_TEST_DEADLINE", "120"))


# -- answers ---------------------------------------------------------------------------------


def _split(response: tuple[Any, ...]) -> tuple[int, dict[str, str] | None, Any]:
    """``(status, headers, body)`` of a unit test's answer, ``(status, None, body)`` of an
    integration test's (whose ``api`` returns no headers)."""
    if len(response) == 3:
        return response[0], response[1], response[2]
    return response[0], None, response[1]


def ok(response: tuple[Any, ...], status: int = 200) -> Any:
    """The answer has ``status`` and a JSON body (when it carries headers); returns the body."""
    got, headers, body = _split(response)
    assert got == status, body
    if headers is not None:
        assert headers["content-type"] == JSON, headers
    return body


def problem(response: tuple[Any, ...], status: int, code: str) -> Any:
    """The answer is a ``/problems/{code}`` problem document with ``status``; returns it."""
    got, headers, body = _split(response)
    assert got == status, body
    if headers is not None:
        assert headers["content-type"] == PROBLEM_JSON, headers
    assert body["type"] == f"/problems/{code}", body
    assert body["status"] == status and body["title"] and body["detail"], body
    return body


def pages(api: Callable[..., tuple[Any, ...]], url: str, limit: int = 100) -> list[Any]:
    """Every item of a paginated list, following ``next_cursor``."""
    found: list[Any] = []
    cursor = None
    while True:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        page = ok(api("GET", url, query=query), 200)
        assert len(page["items"]) <= limit
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


# -- time ------------------------------------------------------------------------------------


class FakeClock:
    """The service's clock, frozen and moved by hand (the same for every thread): ``now`` is
    the time as an aware datetime, ``t`` in epoch seconds."""

    def __init__(self, start: datetime | float) -> None:
        self.now = _moment(start)
        self.start = self.now

    @property
    def t(self) -> float:
        return self.now.timestamp()

    def set(self, moment: datetime | float) -> None:
        self.now = _moment(moment)

    def advance(self, by: float | timedelta = 1) -> None:
        """Move on by ``by`` (seconds, or a timedelta)."""
        self.now += by if isinstance(by, timedelta) else timedelta(seconds=by)

    def at(self, offset: float) -> None:
        """Set the clock to ``offset`` seconds after its start."""
        self.now = self.start + timedelta(seconds=offset)


def _moment(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


@contextmanager
def frozen_clock(start: datetime | float) -> Iterator[FakeClock]:
    """The service's clock stands at ``start`` inside, moved only by the test."""
    fake = FakeClock(start)
    clock.set_clock(lambda: fake.t)
    try:
        yield fake
    finally:
        clock.set_clock(None)


# -- functions -------------------------------------------------------------------------------


def handler_module(name: str) -> Any:
    """Import a function's module, e.g. ``"hold_sweeper.app"``. Powertools reads its settings
    (the metrics namespace, ...) when the module is imported, so tests import handlers once
    the functions' environment is set, never at collection time. Should another test have
    imported the module earlier without that environment, the namespace is set here."""
    module = importlib.import_module(name)
    if module.metrics.namespace is None:
        module.metrics.namespace = METRICS_NAMESPACE
    return module


# -- waiting on other threads ----------------------------------------------------------------


def wait_for(event: threading.Event, what: str, timeout: float = DEADLINE) -> None:
    """Wait until ``event`` is set; fail saying ``what`` never happened within ``timeout``."""
    assert event.wait(timeout), f"{what} within {timeout:.0f}s"


def wait_until(done: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``done()`` until it is true; fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.05)


def results[T](pending: Sequence[cf.Future[T]], what: str, timeout: float = DEADLINE) -> list[T]:
    """The futures' results in order, once all are done; fail saying how many of ``what``
    had not finished within ``timeout`` (an error raised by one is raised here)."""
    _, not_done = cf.wait(pending, timeout=timeout)
    assert not not_done, f"{len(not_done)} of {len(pending)} {what} unfinished after {timeout:.0f}s"
    return [f.result() for f in pending]
