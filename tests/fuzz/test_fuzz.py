"""A short, seeded Schemathesis pass over every operation of docs/openapi.yaml against the
local server (``python -m devtools.fuzz --quick``; ``make fuzz`` is the longer one). It fails
on any failed check: a 5xx, an undocumented status or media type, a response off its schema,
a schema-valid request refused or a schema-invalid one accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed"),
]


def test_a_short_seeded_fuzz_pass_finds_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/credit_meter", "functions", "."])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.fuzz",
            "--quick",
            "--max-time",
            "60",
            "--report",
            str(tmp_path / "junit.xml"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    summary = done.stdout[done.stdout.find("SUMMARY") :] or done.stdout[-4000:]
    assert done.returncode == 0, summary + done.stderr[-2000:]
