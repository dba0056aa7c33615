"""The local server's API Gateway emulation (no storage involved)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devtools import http_front, local_server
from devtools.local_server import ApiGatewayEmulator, build_event, response_from_result


def test_build_event_is_payload_format_2() -> None:
    event = build_event(
        method="post",
        target="/v1/wallets/w1/charges?dry_run=1&tag=a&tag=b&empty=",
        headers=[
            ("Host", "127.0.0.1:3000"),
            ("Content-Type", "application/json"),
            ("User-Agent", "pytest"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("Cookie", "a=1; b=2"),
        ],
        body=b'{"credits": "1"}',
        source_ip="127.0.0.9",
        route_key="POST /v1/wallets/{wallet_id}/charges",
        path_parameters={"wallet_id": "w1"},
    )

    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /v1/wallets/{wallet_id}/charges"
    assert event["rawPath"] == "/v1/wallets/w1/charges"
    assert event["rawQueryString"] == "dry_run=1&tag=a&tag=b&empty="
    assert event["queryStringParameters"] == {"dry_run": "1", "tag": "a,b", "empty": ""}
    assert event["headers"] == {
        "host": "127.0.0.1:3000",
        "content-type": "application/json",
        "user-agent": "pytest",
        "x-multi": "1,2",
    }
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["pathParameters"] == {"wallet_id": "w1"}
    assert event["body"] == '{"credits": "1"}'
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/v1/wallets/w1/charges",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.9",
        "userAgent": "pytest",
    }
    assert ctx["stage"] == "$default"
    assert ctx["routeKey"] == event["routeKey"]
    assert isinstance(ctx["timeEpoch"], int) and ctx["requestId"]


def test_build_event_without_body_or_query() -> None:
    event = build_event(method="GET", target="/v1/prices", headers=[], body=b"")
    assert "body" not in event
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    assert event["routeKey"] == "$default"


def test_binary_body_is_base64() -> None:
    event = build_event(method="PUT", target="/x", headers=[], body=b"\xff\xfe")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_response_translation() -> None:
    response = response_from_result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json"},
            "cookies": ["s=1; HttpOnly"],
            "body": base64.b64encode(b"\x00raw").decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.status == 201
    assert ("set-cookie", "s=1; HttpOnly") in response.headers
    assert response.body == b"\x00raw"

    inferred = response_from_result({"hello": "world"})
    assert inferred.status == 200
    assert json.loads(inferred.body) == {"hello": "world"}


def test_routes_come_from_the_template() -> None:
    routes = local_server.routes_from_template()
    matched = local_server.match_route(routes, "POST", "/v1/wallets/w-1/reservations/r-9/commit")
    assert matched is not None
    route, params = matched
    assert route.key == "POST /v1/wallets/{wallet_id}/reservations/{reservation_id}/commit"
    assert params == {"wallet_id": "w-1", "reservation_id": "r-9"}
    assert local_server.match_route(routes, "DELETE", "/v1/wallets/w-1") is None
    assert local_server.match_route(routes, "GET", "/v1/nope") is None


def test_function_environment_from_template() -> None:
    env = local_server.function_environment_from_template()
    assert env["POWERTOOLS_SERVICE_NAME"] == "credit-meter"
    assert "TABLE_NAME" not in env  # !Ref: set by the server itself


@pytest.mark.parametrize(("given", "expected"), [(None, "true"), ("false", "false")])
def test_the_local_functions_are_in_test_mode_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    # A copy of the environment: configure_environment rewrites much of it.
    env = {k: v for k, v in os.environ.items() if k != "TEST_MODE"}
    if given is not None:
        env["TEST_MODE"] = given
    monkeypatch.setattr(os, "environ", env)
    local_server.configure_environment("http://127.0.0.1:9", "ledger-local")
    assert env["TEST_MODE"] == expected
    assert "TOPUPS_ENABLED" not in env  # top-ups stay on locally


@pytest.fixture
def served() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        assert context.get_remaining_time_in_millis() > 0
        if event["rawPath"] == "/v1/prices":
            raise RuntimeError("boom")
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "cookies": ["a=1", "b=2"],
            "body": json.dumps({"route": event["routeKey"], "params": event.get("pathParameters")}),
        }

    emulator = ApiGatewayEmulator(handler, local_server.routes_from_template())
    server = local_server.make_http_server(emulator, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _request(port: int, method: str, path: str, body: bytes | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def test_http_round_trip(served: tuple[int, list[dict[str, Any]]]) -> None:
    port, seen = served
    status, headers, body = _request(port, "POST", "/v1/wallets/w1/quote?x=1", b'{"a": 1}')
    assert status == 200
    assert json.loads(body) == {
        "route": "POST /v1/wallets/{wallet_id}/quote",
        "params": {"wallet_id": "w1"},
    }
    assert [v for k, v in headers if k.lower() == "set-cookie"] == ["a=1", "b=2"]
    assert seen[-1]["body"] == '{"a": 1}'
    assert seen[-1]["queryStringParameters"] == {"x": "1"}


def test_unknown_route_is_404_without_calling_the_handler(
    served: tuple[int, list[dict[str, Any]]],
) -> None:
    port, seen = served
    status, _, body = _request(port, "DELETE", "/v1/wallets/w1")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert seen == []


def test_handler_exception_is_500(served: tuple[int, list[dict[str, Any]]]) -> None:
    port, _ = served
    status, _, body = _request(port, "GET", "/v1/prices")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


# --------------------------------------------------------------------------
# What API Gateway answers itself, before any function
# --------------------------------------------------------------------------

SHORT_TIMEOUT = 0.5  # the server's socket timeout in these tests, to see it end a stalled body


@pytest.fixture
def edge() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """A server whose routes are the template's, with a 64-byte payload limit."""
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": json.dumps({"body": event.get("body")})}

    emulator = ApiGatewayEmulator(handler, local_server.routes_from_template())
    server = local_server.make_http_server(
        emulator, "127.0.0.1", 0, socket_timeout=SHORT_TIMEOUT, max_body=64
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], Any, bool]:
    """Send bytes as they are; (status, headers, JSON body, whether the server then closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = json.loads(response.read())
        headers = {k.lower(): v for k, v in response.getheaders()}
        closed = sock.recv(1) == b""
    return response.status, headers, body, closed


def _post(length: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"POST /v1/wallets/w1/quote HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{extra}"
    return head.encode() + b"\r\n" + body


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "BREW", "CONNECT"])
def test_unknown_methods_are_404_json(edge: tuple[int, list[dict[str, Any]]], method: str) -> None:
    port, seen = edge
    status, headers, body, _ = _raw(
        port, f"{method} /v1/prices HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert (status, body) == (404, {"message": "Not Found"})
    assert headers["content-type"] == "application/json"
    assert seen == []


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "0x10", "", "5, 6"])
def test_a_bad_content_length_is_400_json(
    edge: tuple[int, list[dict[str, Any]]], length: str
) -> None:
    port, seen = edge
    status, headers, body, closed = _raw(port, _post(length, b"{}"))
    assert (status, body) == (400, {"message": "Bad Request"})
    assert headers["content-type"] == "application/json"
    assert closed and seen == []


def test_differing_content_lengths_are_400(edge: tuple[int, list[dict[str, Any]]]) -> None:
    port, seen = edge
    status, _, body, _ = _raw(port, _post("2", b"{}", "Content-Length: 3\r\n"))
    assert (status, body) == (400, {"message": "Bad Request"})
    assert seen == []


def test_a_body_over_the_payload_limit_is_413_before_it_is_read(
    edge: tuple[int, list[dict[str, Any]]],
) -> None:
    port, seen = edge
    # Declared only: the answer does not wait for a body that never comes.
    status, headers, body, closed = _raw(port, _post("65"))
    assert (status, body) == (413, {"message": "Request Entity Too Large"})
    assert headers["content-type"] == "application/json" and closed
    # A client that asks before sending is refused, not told to continue.
    status, _, body, _ = _raw(port, _post("99999999999999999999", extra="Expect: 100-continue\r\n"))
    assert (status, body) == (413, {"message": "Request Entity Too Large"})
    assert seen == []
    # At the limit, the body goes through.
    status, _, body, _ = _raw(port, _post("64", b"x" * 64, "Connection: close\r\n"))
    assert (status, body) == (200, {"body": "x" * 64})


def test_the_real_payload_limit_is_api_gateways_10_mb() -> None:
    assert local_server.make_http_server.__kwdefaults__["max_body"] == 10 * 1024 * 1024
    assert http_front.GatewayServer.request_queue_size >= 128


def test_a_body_shorter_than_declared_does_not_hold_the_thread(
    edge: tuple[int, list[dict[str, Any]]],
) -> None:
    port, seen = edge
    began = time.monotonic()
    status, _, body, closed = _raw(port, _post("40", b'{"a":'))
    assert (status, body) == (408, {"message": "Request Timeout"})
    assert closed and seen == []
    assert time.monotonic() - began < SHORT_TIMEOUT + 5


def test_a_malformed_request_is_400_json(edge: tuple[int, list[dict[str, Any]]]) -> None:
    port, seen = edge
    status, _, body, closed = _raw(port, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
    assert (status, body) == (400, {"message": "Bad Request"})
    assert closed and seen == []


def test_a_chunked_body_reaches_the_function(edge: tuple[int, list[dict[str, Any]]]) -> None:
    port, seen = edge
    request = (
        b"POST /v1/wallets/w1/quote HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b'Connection: close\r\n\r\n4\r\n{"a"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n'
    )
    status, _, body, _ = _raw(port, request)
    assert (status, body) == (200, {"body": '{"a":1}'})
    assert seen[-1]["routeKey"] == "POST /v1/wallets/{wallet_id}/quote"


def test_keep_alive_requests_share_a_connection(edge: tuple[int, list[dict[str, Any]]]) -> None:
    port, seen = edge
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for n in range(3):
            conn.request("POST", "/v1/wallets/w1/quote", body=str(n).encode())
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"body": str(n)})
    finally:
        conn.close()
    assert len(seen) == 3
