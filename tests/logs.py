"""Reading what the functions log, to show a secret never appears in it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def captured_logs(logger: Any) -> Iterator[io.StringIO]:
    """Everything a function's Powertools logger writes (at DEBUG too) while inside. Its
    handler holds the stream it was made with (stdout at import), so pytest's capture of
    ``sys.stdout`` would miss it: the handler's own stream is swapped instead."""
    handler = logger.registered_handler
    sink = io.StringIO()
    old_stream, old_level = handler.stream, logger.log_level
    handler.setStream(sink)
    logger.setLevel(logging.DEBUG)
    try:
        yield sink
    finally:
        handler.setStream(old_stream)
        logger.setLevel(old_level)
