"""Cursors of paged lists: the last sort key of a page, opaque to the client."""

from __future__ import annotations

import base64
import binascii

from credit_meter.core.errors import FieldProblem, InvalidRequest


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    try:
        sort_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        sort_key = ""
    if not sort_key.startswith(prefix) or len(sort_key) > 64:
        raise InvalidRequest([FieldProblem("cursor", "is not a cursor this list returned")])
    return sort_key
