"""The test clock's item and the handlers' hook that applies it (test mode only).

A deployment made with ``TestMode=true`` (and ``make run``) has one clock offset for the whole
service, stored in one item (docs/data-model.md, "Test clock"). Every function that reads time
is wrapped in :func:`with_test_clock`: in test mode an invocation reads the offset once (one
GetItem) and runs with the clock moved by it; outside test mode the hook does nothing at all,
so production's round trips stay as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.middleware_factory import lambda_handler_decorator

from credit_meter.core import clock
from credit_meter.storage.store import Store, Update, WriteRejected

KEY = {"pk": "CLOCK", "sk": "TEST"}  # no wallet, code or payment partition starts so
OFFSET = "offset_s"  # seconds the service's clock is ahead of the real one
# The offset a test clock may reach in all: ten years, far beyond any test's need, so a
# runaway loop cannot push timestamps past what the models accept.
MAX_TOTAL_SECONDS = 3650 * 86_400


class OffsetLimit(Exception):
    """Advancing would move the clock beyond :data:`MAX_TOTAL_SECONDS` in all."""


def test_mode() -> bool:
    """Whether this deployment has test clocks (``TEST_MODE=true``; never in production)."""
    return os.environ.get("TEST_MODE", "").lower() == "true"


def read_offset(store: Store) -> int:
    item = store.get(KEY)
    return int(item.get(OFFSET, 0)) if item else 0


def add_offset(store: Store, seconds: int) -> int:
    """Move the stored clock forward by ``seconds``; returns the new offset. One atomic ADD,
    refused when the total would pass :data:`MAX_TOTAL_SECONDS` (:class:`OffsetLimit`), so
    concurrent advances add up and none is lost."""
    try:
        store.update(
            Update(
                key=KEY,
                expression="ADD #o :n",
                condition="attribute_not_exists(#o) OR #o <= :most",
                names={"#o": OFFSET},
                values={":n": seconds, ":most": MAX_TOTAL_SECONDS - seconds},
                return_old=False,
            )
        )
    except WriteRejected:
        raise OffsetLimit(f"the clock may move at most {MAX_TOTAL_SECONDS} seconds") from None
    return read_offset(store)


@lambda_handler_decorator
def with_test_clock(handler: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
    """The hook of every handler that reads time: in test mode, the stored offset for this
    invocation (and only for it: a warm container reads it again on the next one)."""
    if not test_mode():
        return handler(event, context)
    clock.set_offset(read_offset(Store()))
    try:
        return handler(event, context)
    finally:
        clock.set_offset(0)
