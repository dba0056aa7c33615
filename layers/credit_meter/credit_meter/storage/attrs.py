"""DynamoDB attribute values <-> Python values (``str``, ``Decimal``, ``bool``, ``None``,
``dict``, ``list``, ``bytes``, and sets of strings).

Written by hand rather than importing ``boto3.dynamodb.types``: importing that module loads all
of boto3 and s3transfer (about 130 ms), a third of the metering function's cold-import budget,
for ~30 lines of mapping. Numbers are always ``Decimal`` — never ``float``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def serialize(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return {"M": {k: serialize(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize(v) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, (set, frozenset)) and value and all(isinstance(v, str) for v in value):
        return {"SS": sorted(value)}  # DynamoDB has no empty set: remove the attribute instead
    raise TypeError(f"cannot store a {type(value).__name__} (floats are never stored)")


def deserialize(attr: Mapping[str, Any]) -> Any:
    if not attr:
        # DynamoDB Local's stream images carry an empty map or list as a bare {}; every
        # empty collection the projector reads is a map.
        return {}
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: deserialize(v) for k, v in value.items()}
    if kind == "L":
        return [deserialize(v) for v in value]
    if kind == "SS":
        return set(value)
    if kind == "B":
        return value
    raise TypeError(f"unsupported attribute type {kind}")
