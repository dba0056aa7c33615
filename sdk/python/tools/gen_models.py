"""Generate ``credit_meter_client/models.py`` from the API's OpenAPI document.

    python sdk/python/tools/gen_models.py            # rewrite the module
    python sdk/python/tools/gen_models.py --check    # exit 1 when it differs

Hand-written rather than datamodel-code-generator: the SDK's models are plain frozen
dataclasses (no pydantic at run time), and decimal strings become ``Decimal``, which the
schema says only through its decimal ``pattern``. Needs PyYAML (only here, not at run time).
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "docs" / "openapi.yaml"
TARGET = Path(__file__).resolve().parents[1] / "src" / "credit_meter_client" / "models.py"
DECIMAL_PATTERN = r"^-?\d+(\.\d{1,6})?$"

HEADER = '''"""Response models of the Credit Meter API, generated from docs/openapi.yaml.

Do not edit by hand: run ``python sdk/python/tools/gen_models.py``. Amounts are ``Decimal``,
times ``datetime``; fields the server adds later are ignored, so an older SDK keeps working.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter_client._model import Model

__all__ = [{names}]
'''


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def py_type(schema: dict[str, Any]) -> str:
    """The annotation for one property's schema (``X | None`` for a nullable one)."""
    if "$ref" in schema:
        return ref_name(schema["$ref"])
    for combiner in ("anyOf", "oneOf"):
        if combiner in schema:
            options = [s for s in schema[combiner] if s.get("type") != "null"]
            nullable = len(options) < len(schema[combiner])
            inner = " | ".join(dict.fromkeys(py_type(s) for s in options)) or "Any"
            return f"{inner} | None" if nullable else inner
    kind = schema.get("type")
    if kind == "string":
        if schema.get("pattern") == DECIMAL_PATTERN:
            return "Decimal"
        fmt = schema.get("format")
        if fmt == "date-time":
            return "_dt.datetime"
        if fmt == "date":
            return "_dt.date"
        return "str"
    if kind == "integer":
        return "int"
    if kind == "number":
        return "Decimal"
    if kind == "boolean":
        return "bool"
    if kind == "array":
        return f"list[{py_type(schema.get('items', {}))}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"dict[str, {py_type(schema['additionalProperties'])}]"
    if kind == "object":
        return "dict[str, Any]"
    return "Any"


def field_name(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) else name


def render_class(name: str, schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    lines = ["", "", "@dataclass(frozen=True)", f"class {name}(Model):"]
    doc = (schema.get("description") or "").strip().splitlines()
    if doc:
        lines.append(f'    """{doc[0].strip()}"""')
        lines.append("")
    aliases: dict[str, str] = {}
    ordered = [p for p in properties if p in required] + [
        p for p in properties if p not in required
    ]
    for prop in ordered:
        annotation = py_type(properties[prop])
        attr = field_name(prop)
        if attr != prop:
            aliases[attr] = prop
        if prop in required:
            lines.append(f"    {attr}: {annotation}")
        elif annotation.startswith(("list[", "dict[")) and not annotation.endswith("| None"):
            factory = "list" if annotation.startswith("list[") else "dict"
            lines.append(f"    {attr}: {annotation} = field(default_factory={factory})")
        else:
            optional = annotation if annotation.endswith("| None") else f"{annotation} | None"
            lines.append(f"    {attr}: {optional} = None")
    if not ordered:
        lines.append("    pass")
    if aliases:
        lines.append("")
        lines.append(f"    _aliases = {json.dumps(aliases)}")
    return "\n".join(lines)


def generate(spec: dict[str, Any]) -> str:
    schemas: dict[str, Any] = spec["components"]["schemas"]
    names = sorted(n for n, s in schemas.items() if n.endswith("Out") and "properties" in s)
    body = [HEADER.format(names=", ".join(repr(n) for n in names))]
    body.extend(render_class(name, schemas[name]) for name in names)
    return "\n".join(body).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the module is stale")
    parser.add_argument("--spec", type=Path, default=SPEC)
    args = parser.parse_args(argv)
    text = generate(yaml.safe_load(args.spec.read_text(encoding="utf-8")))
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(
                f"{TARGET.name} is stale: run python sdk/python/tools/gen_models.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
