"""Reading an HTTP request body: media type, size, strict JSON (no floats, no NaN)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from credit_meter.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 16 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def json_object(body: str | None, content_type: str | None, optional: bool = False) -> dict:
    """The body as a JSON object; numbers become ``int`` or ``Decimal``, never ``float``."""
    if body is None or body.strip() == "":
        if optional:
            return {}
        raise MalformedRequest("the request needs a JSON body")
    if len(body.encode()) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType("send the body as application/json")
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise MalformedRequest(f"the body is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise MalformedRequest("the body must be a JSON object")
    return value
