"""JSON Schema for the document (docs/openapi.yaml) that validation states in code: amounts'
bounds as patterns, catalog names as enums, "exactly one of these fields". Nothing here
validates; the models attach it with ``WithJsonSchema`` and ``json_schema_extra`` so that the
schemas are as tight as the checks (devtools/fuzz.py holds them to it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import Field

if TYPE_CHECKING:
    from credit_meter.core.catalog import Catalog

# What parse_amount accepts, as JSON Schema: a string holding a plain decimal with at most six
# fractional digits that count (zeros may follow them: "1.5000000" is 1.5), or a number; at
# most 10^12 in size. JSON Schema has no numeric bounds for strings, so the string's are a
# pattern: "up to ``digits`` integer digits, or exactly 10^digits".
_FRACTION = r"(\.[0-9]{1,6}0*)?"
_ZERO = r"0+(\.0+)?"
_AMOUNT_DESCRIPTION = (
    "Credits: a decimal with at most 6 fractional digits, at most 10^12 in size, as a string "
    "(ASCII digits, an optional leading `-` and fraction; no exponent) or a number."
)


def decimal_schema(
    digits: int = 12, *, sign: str = "positive", description: str = _AMOUNT_DESCRIPTION
) -> dict[str, Any]:
    """A decimal of at most 10^``digits`` in size. ``sign``: "positive" (> 0), "non-negative"
    (>= 0), "non-zero" (either sign), or "at-least-one" (>= 1)."""
    top = 10**digits
    size = rf"(?:0*[0-9]{{1,{digits}}}{_FRACTION}|0*{top}(\.0+)?)"
    number: dict[str, Any] = {"type": "number", "maximum": top, "multipleOf": 0.000001}
    if sign == "positive":
        text, number["exclusiveMinimum"] = f"^(?!{_ZERO}$){size}$", 0
    elif sign == "non-negative":
        text, number["minimum"] = f"^{size}$", 0
    elif sign == "at-least-one":
        text = rf"^(?:0*[1-9][0-9]{{0,{digits - 1}}}{_FRACTION}|0*{top}(\.0+)?)$"
        number["minimum"] = 1
    else:
        text = f"^(?!-?{_ZERO}$)-?{size}$"
        number = {**number, "minimum": -top, "not": {"const": 0}}
    return {"oneOf": [{"type": "string", "pattern": text}, number], "description": description}


def catalog_names(names: Callable[[Catalog], Iterable[str]]) -> Any:
    """For the document only: the names the catalog knows (plans, meters, models, ...) as the
    schema's enum. Validation still asks the catalog in use, so nothing else changes; the
    catalog is read when a schema is made, never when the module is imported."""

    def extra(schema: dict[str, Any]) -> None:
        from credit_meter.core.catalog import catalog

        schema["enum"] = sorted(names(catalog()))

    return Field(json_schema_extra=extra)


def any_case(word: str) -> str:
    """A pattern matching ``word`` in any case (currencies are matched case-insensitively)."""
    return "^" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word) + "$"


def not_null(*fields: str) -> dict[str, Any]:
    """A schema that holds when every one of ``fields`` is given and is not null."""
    return {
        "required": list(fields),
        "properties": {f: {"not": {"type": "null"}} for f in fields},
    }


def one_of_fields(*fields: str) -> dict[str, Any]:
    """For the document: exactly one of ``fields`` is given (and not null)."""
    return {"oneOf": [not_null(field) for field in fields]}
