"""The local server's worker processes (devtools.lambda_pool): concurrent invocations in separate
warm processes, through real sockets, and no log context carried from one invocation to the
next. The handlers are in tests/local_handlers.py."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import local_server
from devtools.lambda_context import FakeLambdaContext
from devtools.lambda_pool import InvocationError, LambdaPool

HANDLERS = "tests.local_handlers"
CLIENTS = 64


@pytest.fixture(scope="module")
def pool() -> Iterator[LambdaPool]:
    with LambdaPool(4, [f"{HANDLERS}:meet", f"{HANDLERS}:pid"]) as started:
        yield started


@pytest.fixture(scope="module")
def server(pool: LambdaPool) -> Iterator[int]:
    """The HTTP front end on a free port; every request goes to ``meet`` in the pool."""
    emulator = local_server.ApiGatewayEmulator(pool.function(f"{HANDLERS}:meet", "meet"))
    http_server = local_server.make_http_server(emulator, "127.0.0.1", 0)
    thread = threading.Thread(target=http_server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield http_server.server_address[1]
    finally:
        http_server.shutdown()
        http_server.server_close()
        thread.join(10)


def _client(port: int, room: Path, start: threading.Barrier, out: list[Any]) -> None:
    try:
        start.wait(timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/meet", headers={"x-room": str(room)})
            response = conn.getresponse()
            out.append((response.status, json.loads(response.read())))
        finally:
            conn.close()
    except Exception as err:  # counted: the test wants none
        out.append(err)


def test_64_concurrent_clients_overlap_in_separate_workers(
    server: int, pool: LambdaPool, tmp_path: Path
) -> None:
    results: list[Any] = []
    start = threading.Barrier(CLIENTS)
    clients = [
        threading.Thread(target=_client, args=(server, tmp_path, start, results))
        for _ in range(CLIENTS)
    ]
    began = time.monotonic()
    for client in clients:
        client.start()
    for client in clients:
        client.join(120)
    took = time.monotonic() - began

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of {CLIENTS} clients failed: {errors[:3]}"
    assert len(results) == CLIENTS
    assert {status for status, _ in results} == {200}
    answers = [body for _, body in results]
    assert {a["pid"] for a in answers} <= set(pool.pids)
    assert len({a["pid"] for a in answers}) >= 2, "more than one worker served"
    assert max(a["peak"] for a in answers) >= 2, "two invocations ran at the same time"
    overlapping = [
        (a, b)
        for a in answers
        for b in answers
        if a["pid"] != b["pid"] and a["started"] < b["ended"] and b["started"] < a["ended"]
    ]
    assert overlapping, "two workers' invocations overlap in time"
    print(f"{CLIENTS} concurrent clients served in {took:.2f} s")


def test_an_invocation_gets_its_context_and_a_warm_worker(pool: LambdaPool) -> None:
    pid = pool.function(f"{HANDLERS}:pid", "pid", timeout=7)
    first = json.loads(pid({}, FakeLambdaContext())["body"])
    assert first["pid"] in pool.pids
    assert 0 < first["remaining_ms"] <= 7000
    # The pool keeps its workers: the same processes serve every later invocation.
    later = {json.loads(pid({}, FakeLambdaContext())["body"])["pid"] for _ in range(8)}
    assert later <= set(pool.pids) and len(pool.pids) == 4


def test_a_handler_error_fails_the_invocation_not_the_worker(pool: LambdaPool) -> None:
    workers = set(pool.pids)
    with pytest.raises(InvocationError, match="boom"):
        pool.function(f"{HANDLERS}:boom")({}, FakeLambdaContext())
    assert set(pool.pids) == workers


def test_a_dead_or_timed_out_worker_is_replaced() -> None:
    with LambdaPool(1, [f"{HANDLERS}:pid"], answer_grace=0.2) as pool:
        pid = pool.function(f"{HANDLERS}:pid")
        (before,) = pool.pids
        with pytest.raises(InvocationError):
            pool.function(f"{HANDLERS}:crash")({}, FakeLambdaContext())
        (after_crash,) = pool.pids
        assert after_crash != before
        assert json.loads(pid({}, FakeLambdaContext())["body"])["pid"] == after_crash

        with pytest.raises(InvocationError, match="timed out"):
            pool.function(f"{HANDLERS}:stall", timeout=0.2)({}, FakeLambdaContext())
        (after_timeout,) = pool.pids
        assert after_timeout != after_crash
        assert json.loads(pid({}, FakeLambdaContext())["body"])["pid"] == after_timeout


def _logged(
    pool: LambdaPool, name: str, org: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    event = {"queryStringParameters": {"org": org} if org else {}}
    answer = json.loads(pool.function(f"{HANDLERS}:logs", name)(event, FakeLambdaContext())["body"])
    return answer["pid"], answer["lines"]


def test_no_log_keys_leak_from_one_invocation_to_the_next() -> None:
    with LambdaPool(1, [f"{HANDLERS}:logs"]) as pool:  # one worker: it serves both
        first_pid, first = _logged(pool, "credit-meter-a", org="org-1")
        second_pid, second = _logged(pool, "credit-meter-b")
    assert first_pid == second_pid
    assert [(line["org_id"], line["function_name"]) for line in first] == [
        ("org-1", "credit-meter-a")
    ]
    assert [line["function_name"] for line in second] == ["credit-meter-b"]
    assert "org_id" not in second[0]
    assert second[0]["function_request_id"] != first[0]["function_request_id"]


def test_without_the_workers_clearing_keys_they_would_leak() -> None:
    """The control for the test above: the same handler called twice in one process, as a
    warm Lambda environment would, keeps the first caller's org_id."""
    from tests import local_handlers

    local_handlers.logs({"queryStringParameters": {"org": "org-1"}}, FakeLambdaContext())
    second = json.loads(local_handlers.logs({}, FakeLambdaContext())["body"])["lines"]
    local_handlers.logger.clear_state()
    assert second[0].get("org_id") == "org-1"
