"""The base of the generated response models: builds one from the API's JSON.

Conversion follows each field's annotation, so the generated module stays declarations only:
decimal strings become ``Decimal`` (never ``float``), ISO 8601 strings ``datetime``/``date``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import types
import typing
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

M = TypeVar("M", bound="Model")


class Model:
    """A response document; ``raw`` keeps the JSON as received (fields the SDK does not know)."""

    _aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any]) -> M:
        values: dict[str, Any] = {}
        hints = _hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = cls._aliases.get(f.name, f.name)
            if key in data:
                values[f.name] = _convert(hints[f.name], data[key])
        obj = cls(**values)
        object.__setattr__(obj, "_raw", data)
        return obj

    @property
    def raw(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], getattr(self, "_raw", {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        from credit_meter_client import models

        _HINTS[cls] = typing.get_type_hints(cls, localns=vars(models))
    return _HINTS[cls]


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if origin is dict:
        _key, item = typing.get_args(hint)
        return {k: _convert(item, v) for k, v in value.items()}
    if hint is Decimal:
        return Decimal(str(value))
    if hint is _dt.datetime:
        return _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if hint is _dt.date:
        return _dt.date.fromisoformat(str(value))
    if isinstance(hint, type) and issubclass(hint, Model) and isinstance(value, dict):
        return hint.from_dict(value)
    return value
