"""docs/openapi.yaml makes a whole client: ``openapi-python-client`` (pinned in
requirements-dev.txt) generates one from it without a single warning. A warning means a schema
or a response it could not read and left out of the client (it once dropped the 401 and 403
of every operation), so any warning fails the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.mark.skipif(not GENERATOR.exists(), reason="openapi-python-client is not installed")
def test_a_python_client_generates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "client"
    # Its post-generation hooks run ruff: the venv's, found on PATH.
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(DOCUMENT),
            "--meta",
            "none",
            "--output-path",
            str(out),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "Warning" not in report and "WARNING" not in report, report
    # Every operation's 401 made it into the client (they were dropped once).
    wallet = (out / "api" / "wallets" / "get_wallet.py").read_text(encoding="utf-8")
    assert "UnauthenticatedProblem" in wallet and "status_code == 401" in wallet
    shutil.rmtree(out)
