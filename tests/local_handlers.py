"""Handlers for the local server's worker-pool tests, run inside worker processes (named by
entry: ``"tests.local_handlers:meet"``). Every wait here is bounded."""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

_log_sink = io.StringIO()
logger = Logger(service="local-handlers", logger_handler=logging.StreamHandler(_log_sink))


def _answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(payload),
    }


def meet(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stay until another invocation is running at the same time, or until any two have met
    (``met`` in the room), at most 30 s; the room is the directory in ``x-room``. Answers the
    worker's pid, when it ran (``time.monotonic``, one clock for all processes on the machine)
    and the most invocations it saw running at once."""
    room = Path(event["headers"]["x-room"])
    me = room / f"active-{uuid.uuid4().hex}"
    me.touch()
    started = time.monotonic()
    peak = 1
    try:
        while time.monotonic() < started + 30:
            peak = max(peak, len(list(room.glob("active-*"))))
            if peak >= 2:
                (room / "met").touch()
                break
            if (room / "met").exists():
                break
            time.sleep(0.005)
    finally:
        ended = time.monotonic()
        me.unlink()
    return _answer({"pid": os.getpid(), "peak": peak, "started": started, "ended": ended})


@logger.inject_lambda_context
def logs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Log one line, with ``org_id`` appended when the query names one (as the BYOK function
    appends its caller's); answer the lines logged during this invocation."""
    _log_sink.seek(0)
    _log_sink.truncate()
    org = (event.get("queryStringParameters") or {}).get("org")
    if org:
        logger.append_keys(org_id=org)
    logger.info("invoked")
    lines = [json.loads(line) for line in _log_sink.getvalue().splitlines()]
    return _answer({"pid": os.getpid(), "lines": lines})


def pid(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _answer({"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis()})


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("boom (a test's handler failing on purpose)")


def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    os._exit(3)  # the runtime dies mid-invocation


def stall(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Outlive the invocation's timeout (bounded at 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return _answer({})
