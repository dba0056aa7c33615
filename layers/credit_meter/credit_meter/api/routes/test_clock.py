"""Test clock routes (docs/api.md, "Test clocks"): where the service's clock stands, and moving
it forward with the schedules run up to the new time. They exist in test mode only: otherwise
the access middleware answers them as it answers an unknown route (404)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from credit_meter.api.routes.base import json_response, no_query, read_body, router
from credit_meter.core import clock
from credit_meter.storage import test_clock

if TYPE_CHECKING:
    from credit_meter.billing.test_clock import ClockControl

ROUTES = frozenset({"GET /v1/test-clock", "POST /v1/test-clock"})


def _control() -> ClockControl:
    from credit_meter.billing.test_clock import ClockControl

    assert test_clock.test_mode()  # the middleware lets no request through otherwise
    return ClockControl()


@router.get("/v1/test-clock")
def get_test_clock() -> Response[Any]:
    from credit_meter.api.test_clock_models import ClockOut

    no_query()
    position = _control().position()
    return json_response(200, ClockOut.of(position, int(clock.now_ts())))


@router.post("/v1/test-clock")
def advance_test_clock() -> Response[Any]:
    from credit_meter.api.test_clock_models import ClockAdvanceIn, ClockOut

    body = read_body(ClockAdvanceIn)
    position = _control().advance(body.advance_seconds)
    return json_response(200, ClockOut.of(position, int(clock.now_ts())))
