"""The SDK's tests run against a real local API (``sdk/testing/harness.py``).

The harness runs with the repository's ``.venv`` (the server's environment: ``CM_SERVER_PYTHON``
overrides it), so that this suite can run in a fresh venv holding only the installed SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from credit_meter_client import CreditMeter

REPO = Path(__file__).resolve().parents[3]
HARNESS = REPO / "sdk" / "testing" / "harness.py"


@pytest.fixture(scope="session")
def api() -> Iterator[dict[str, Any]]:
    if os.environ.get("CM_SDK_API"):  # a harness started by hand: its JSON line
        yield json.loads(os.environ["CM_SDK_API"])
        return
    python = os.environ.get("CM_SERVER_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    proc = subprocess.Popen(
        [python, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()  # the harness has its own startup deadline
    if not line:
        proc.wait(timeout=30)
        pytest.fail("the local API did not start (see the harness's output above)")
    try:
        yield json.loads(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture()
def cm(api: dict[str, Any]) -> Iterator[CreditMeter]:
    with CreditMeter(api_key=api["token"], base_url=api["base_url"], timeout=30) as client:
        yield client


@pytest.fixture()
def admin(api: dict[str, Any]) -> Iterator[CreditMeter]:
    """A person with the admin role: limits and budgets are theirs to set."""
    with CreditMeter(api_key=api["admin_token"], base_url=api["base_url"]) as client:
        yield client


@pytest.fixture()
def wallet(cm: CreditMeter) -> str:
    """A new wallet of organisation acme on the starter plan (500 credits)."""
    wallet_id = f"w-{uuid.uuid4().hex[:12]}"
    cm.wallets.create(wallet_id, org_id="acme", plan="starter")
    return wallet_id


class Proxy:
    """The harness's fault-injecting proxy."""

    def __init__(self, url: str) -> None:
        self.url = url

    def drop_next_posts(self, count: int) -> None:
        httpx.post(f"{self.url}/__proxy/drop", json={"count": count}).raise_for_status()

    def fail_next(self, count: int, status: int) -> None:
        body = {"count": count, "status": status}
        httpx.post(f"{self.url}/__proxy/fail", json=body).raise_for_status()

    def posts(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.url}/__proxy/stats").json())


@pytest.fixture()
def proxy(api: dict[str, Any]) -> Proxy:
    return Proxy(api["proxy_url"])
