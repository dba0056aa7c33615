"""Reading an HTTP request: its path as routes see it, and its body (media type, size, strict
JSON: no floats, no NaN)."""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from credit_meter.core.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 16 * 1024


def decoded_path(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its path percent-decoded. API Gateway hands over the path as the client
    sent it (``rawPath``), and Powertools' router takes route parameters from that text as it
    is, so ``/v1/wallets/w%3A1`` would name the wallet ``w%3A1`` and fail the id rule (422),
    although it is ``w:1`` — the id API Gateway itself routes on. Decoded once, here (the BYOK
    function decodes its one path parameter itself)."""
    raw = event.get("rawPath")
    if not isinstance(raw, str) or "%" not in raw:
        return event
    # Segment by segment: an encoded "/" stays inside its segment, as API Gateway keeps it
    # (so `a%2Fb` is one id, and refused by the id rule, not another route).
    segments = (unquote(segment).replace("/", "%2F") for segment in raw.split("/"))
    return {**event, "rawPath": "/".join(segments)}


def _json_number(text: str) -> int | Decimal:
    """A JSON number written with a fraction or an exponent: ``Decimal``, never ``float``. A
    whole one of sane size (``1690.0``, ``1e3``) is an ``int``, since JSON Schema counts it an
    integer; one with a huge exponent stays ``Decimal`` (its ``int`` would cost CPU)."""
    value = Decimal(text)
    if value.is_finite() and value.adjusted() < 19 and value == value.to_integral_value():
        return int(value)
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def body_text(body: str | None, base64_encoded: bool | None) -> str | None:
    """The body as text; API Gateway sends bodies that are not valid UTF-8 base64-encoded."""
    if not base64_encoded or body is None:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedRequest("the body is not UTF-8 JSON") from None


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
        value = json.loads(body, parse_float=_json_number, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise MalformedRequest(f"the body is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise MalformedRequest("the body must be a JSON object")
    return value
