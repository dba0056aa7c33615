"""Files generated from the code (docs/openapi.yaml, monitoring/template.yaml): write one, or,
with ``check``, say how it differs from what is on disk (``make lint`` fails on a stale file)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def write_or_check(output: Path, text: str, *, check: bool, command: str) -> int:
    """Exit status: 0 when written or up to date, 1 when ``check`` finds it stale."""
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if check:
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{output} (on disk)",
            tofile="generated",
            n=2,
        )
        sys.stderr.writelines(list(diff)[:60])
        print(f"{output} is out of date: run {command}", file=sys.stderr)
        return 1
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    return 0
