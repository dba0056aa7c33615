"""The local stack with the real functions in worker processes, on DynamoDB Local: concurrent
reservations through HTTP all land, none overspends, and the projector sees them."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import dev_tokens, local_server

CLIENTS = 16


@pytest.fixture
def stack(
    ddb_local_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[int]:
    """The local server (real handlers, two workers) on a free port; its own DynamoDB Local."""
    monkeypatch.setenv("DEV_JWT_KEY_FILE", str(tmp_path / "dev-jwt-key.pem"))
    monkeypatch.setenv("ALERTS_FILE", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("BYOK_LOCAL_KEY_FILE", str(tmp_path / "byok.key"))
    monkeypatch.setenv("LOCAL_STRIPE_PORT", "0")
    with local_server.local_stack(
        backend="ddb-local",
        table_name="local-workers-test",
        port=0,
        workers=2,
        sweep_seconds=0,
        reset_seconds=0,
    ) as (server, _backend):
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(10)


def _call(port: int, method: str, path: str, token: str, body: Any = None, key: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def test_concurrent_reservations_through_the_workers(stack: int) -> None:
    admin = dev_tokens.mint("admin@o1", "o1", "admin")
    meter = dev_tokens.mint("backend@o1", "o1", scope="credits:meter")
    status, wallet = _call(stack, "PUT", "/v1/wallets/w1", admin, {"plan": "starter"})
    assert status in (200, 201), wallet
    allowance = int(wallet["available"])

    results: list[Any] = []
    start = threading.Barrier(CLIENTS)

    def reserve(n: int) -> None:
        try:
            start.wait(timeout=60)
            body = {"credits": str(allowance // 10), "feature": "chat", "member_id": "ana"}
            results.append(
                _call(stack, "POST", "/v1/wallets/w1/reservations", meter, body, f"k{n}")
            )
        except Exception as err:
            results.append(err)

    clients = [threading.Thread(target=reserve, args=(n,)) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(120)

    assert not [r for r in results if isinstance(r, BaseException)]
    statuses = sorted(status for status, _ in results)
    granted = statuses.count(201)
    # Ten tenths fit in the allowance; the others are refused, none overspends.
    assert granted == 10, statuses
    status, after = _call(stack, "GET", "/v1/wallets/w1", admin)
    assert status == 200
    assert int(after["held"]) == granted * (allowance // 10)
    assert int(after["available"]) == allowance - granted * (allowance // 10)


def test_the_stream_consumers_run_in_the_workers(stack: int, tmp_path: Path) -> None:
    admin = dev_tokens.mint("admin@o1", "o1", "admin")
    meter = dev_tokens.mint("backend@o1", "o1", scope="credits:meter")
    assert _call(stack, "PUT", "/v1/wallets/w2", admin, {"plan": "starter"})[0] in (200, 201)
    status, charged = _call(
        stack, "POST", "/v1/wallets/w2/charges", meter, {"feature": "agent", "credits": "380"}
    )
    assert status == 201, charged

    # The projector writes the ledger entry, the alerts function the 75 % crossing.
    alerts = tmp_path / "alerts.jsonl"
    deadline = time.monotonic() + 60
    types: list[str] = []
    lines: list[str] = []
    while time.monotonic() < deadline and not ("charge" in types and lines):
        page = _call(stack, "GET", "/v1/wallets/w2/transactions", admin)[1]
        types = [item["type"] for item in page.get("items", [])]
        lines = alerts.read_text().splitlines() if alerts.exists() else []
        if not ("charge" in types and lines):
            time.sleep(0.2)
    assert "charge" in types
    assert [json.loads(line)["type"] for line in lines] == ["credits.threshold_crossed"]
