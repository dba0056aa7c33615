"""Generate ``_async_resources.py`` from the synchronous resources.

    python sdk/python/tools/gen_async.py            # rewrite the module
    python sdk/python/tools/gen_async.py --check    # exit 1 when it differs

A few textual rules, as the resources are written to them: each method either returns
``self._runner.run(...)`` (becomes ``async def`` and ``await``) or, returning an ``Iterator``,
``self._runner.paginate(...)`` (stays ``def``, returning an ``AsyncIterator``). Chosen over
unasync-style tools to keep the SDK's tooling to the standard library.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "credit_meter_client"
SOURCES = ("_resources.py", "_resources_more.py")
TARGET = PACKAGE / "_async_resources.py"

HEADER = '''"""The API's operations for the asyncio client, generated from ``_resources.py`` and
``_resources_more.py`` by ``tools/gen_async.py``: do not edit by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

from credit_meter_client import models as m
from credit_meter_client._base import Call, CsvPage, _Resource, body_of, new_key, segment
from credit_meter_client._resources import Amount, Usage, _iso, _w
'''


def classes(source: str) -> str:
    """The resource classes of one module, without its imports and helpers."""
    found = re.search(r"^class \w+\(_Resource\):", source, re.M)
    assert found is not None
    start = found.start()
    end = source.find("\n# operationId", start)
    return source[start : end if end != -1 else len(source)].rstrip() + "\n"


def convert(text: str) -> str:
    text = re.sub(r"^class (\w+)\(_Resource\):", r"class Async\1(_Resource):", text, flags=re.M)
    text = text.replace("Iterator[", "AsyncIterator[")
    out: list[str] = []
    for block in re.split(r"(?=^    def )", text, flags=re.M):
        if block.startswith("    def ") and "self._runner.run(" in block:
            block = "    async def " + block[len("    def ") :]
            block = block.replace("return self._runner.run(", "return await self._runner.run(")
            block = block.replace("        self._runner.run(", "        await self._runner.run(")
        out.append(block)
    return "".join(out)


def generate() -> str:
    bodies = [convert(classes((PACKAGE / name).read_text(encoding="utf-8"))) for name in SOURCES]
    return HEADER + "\n\n" + "\n\n".join(bodies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the module is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(
                f"{TARGET.name} is stale: run python sdk/python/tools/gen_async.py", file=sys.stderr
            )
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
