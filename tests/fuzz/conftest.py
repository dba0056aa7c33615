"""The fuzz pass runs on its own: ``pytest tests/fuzz`` or ``pytest -m fuzz`` (a minute)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: Schemathesis against the local server (devtools/fuzz.py), ~1 minute"
    )
