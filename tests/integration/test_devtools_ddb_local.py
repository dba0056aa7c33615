"""DynamoDB Local, the template's table on it, the stream pump and the local server."""

from __future__ import annotations

import http.client
import json
from typing import Any

import boto3
import pytest

from devtools import ddb_local, local_server
from devtools.stream_pump import StreamPump, StreamPumpError
from tests.helpers import DEADLINE, wait_until


def _stream_arn(client: Any, name: str) -> str:
    arn: str = client.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    return arn


def _put(client: Any, name: str, pk: str, sk: str = "S", **attrs: dict[str, Any]) -> None:
    client.put_item(TableName=name, Item={"pk": {"S": pk}, "sk": {"S": sk}, **attrs})


def test_table_is_created_from_the_template(ddb_client: Any, ddb_table: str) -> None:
    description = ddb_client.describe_table(TableName=ddb_table)["Table"]
    assert description["TableStatus"] == "ACTIVE"
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    ttl = ddb_client.describe_time_to_live(TableName=ddb_table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_default_sdk_clients_are_isolated_from_real_aws(ddb_local_endpoint: str) -> None:
    session = boto3.session.Session()
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.access_key == "testing"
    assert session.region_name == "us-east-1"


def test_pump_delivers_every_change_in_order(ddb_client: Any, ddb_table: str) -> None:
    batches: list[dict[str, Any]] = []
    pump = StreamPump(
        lambda: ddb_local.client(ddb_client.meta.endpoint_url, "dynamodbstreams"),
        _stream_arn(ddb_client, ddb_table),
        lambda event, context: batches.append(event),
    )

    _put(ddb_client, ddb_table, "W#1", data={"B": b"\x00\x01"})
    _put(ddb_client, ddb_table, "W#1", n={"N": "2"})
    ddb_client.delete_item(TableName=ddb_table, Key={"pk": {"S": "W#1"}, "sk": {"S": "S"}})
    assert pump.drain() == 3
    assert pump.drain() == 0  # nothing new

    records = [r for batch in batches for r in batch["Records"]]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    first = records[0]
    assert first["eventSource"] == "aws:dynamodb"
    assert first["eventSourceARN"] == pump.stream_arn
    assert first["dynamodb"]["NewImage"]["data"] == {"B": "AAE="}  # base64, as Lambda sends it
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], float)
    assert records[1]["dynamodb"]["OldImage"]["data"] == {"B": "AAE="}
    json.dumps(batches)  # the events are plain JSON, like Lambda's


def test_partial_batch_failure_is_retried_from_the_failed_record(
    ddb_local_endpoint: str, ddb_client: Any, ddb_table: str
) -> None:
    delivered: list[str] = []
    calls = 0

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        records = event["Records"]
        if calls == 1:
            delivered.append(records[0]["dynamodb"]["Keys"]["pk"]["S"])
            failed = records[1]["dynamodb"]["SequenceNumber"]
            return {"batchItemFailures": [{"itemIdentifier": failed}]}
        delivered.extend(r["dynamodb"]["Keys"]["pk"]["S"] for r in records)
        return {"batchItemFailures": []}

    pump = StreamPump(ddb_local_endpoint, _stream_arn(ddb_client, ddb_table), handler)
    for i in range(4):
        _put(ddb_client, ddb_table, f"W#{i}")
    assert pump.drain() == 4
    assert delivered == ["W#0", "W#1", "W#2", "W#3"]
    assert calls == 2


def test_a_failing_handler_blocks_the_shard_and_drain_reports_it(
    ddb_local_endpoint: str, ddb_client: Any, ddb_table: str
) -> None:
    attempts = 0

    def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("projection failed")

    pump = StreamPump(ddb_local_endpoint, _stream_arn(ddb_client, ddb_table), handler)
    _put(ddb_client, ddb_table, "W#1")
    with pytest.raises(StreamPumpError) as excinfo:
        pump.drain(max_failures=3)
    assert attempts == 3
    assert isinstance(excinfo.value.__cause__, RuntimeError)

    # Once the handler recovers, the same record is delivered: nothing was skipped.
    seen: list[str] = []
    pump.handler = lambda event, context: seen.extend(r["eventName"] for r in event["Records"])
    assert pump.drain() == 1
    assert seen == ["INSERT"]


def test_background_pump(ddb_local_endpoint: str, ddb_client: Any, ddb_table: str) -> None:
    seen: list[str] = []
    pump = StreamPump(
        ddb_local_endpoint,
        _stream_arn(ddb_client, ddb_table),
        lambda event, context: seen.extend(r["eventName"] for r in event["Records"]),
        poll_interval=0.05,
    )
    pump.start()
    try:
        _put(ddb_client, ddb_table, "W#1")
        wait_until(lambda: seen, "the background pump did not deliver the change")
    finally:
        pump.stop()
    assert seen == ["INSERT"]


def test_local_stack_end_to_end(
    ddb_local_endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP request with a development token -> API handler writes to DynamoDB Local ->
    stream -> projector."""
    import threading

    from devtools import dev_tokens

    monkeypatch.setenv("DEV_JWT_KEY_FILE", str(tmp_path / "dev-jwt-key.pem"))
    projected: list[dict[str, Any]] = []
    seen_claims: list[dict[str, Any]] = []

    def api_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        import os

        seen_claims.append(event["requestContext"]["authorizer"]["jwt"]["claims"])
        client = boto3.client("dynamodb")  # endpoint and creds come from the environment
        wallet_id = event["pathParameters"]["wallet_id"]
        client.put_item(
            TableName=os.environ["TABLE_NAME"],
            Item={"pk": {"S": f"W#{wallet_id}"}, "sk": {"S": "W"}},
        )
        return {"statusCode": 201, "body": json.dumps({"wallet_id": wallet_id})}

    def projector(event: dict[str, Any], context: Any) -> None:
        projected.extend(event["Records"])

    with local_server.local_stack(
        backend="ddb-local",
        table_name="local-stack-test",
        api_handler=api_handler,
        projector_handler=projector,
        port=0,
    ) as (server, backend):
        assert backend.kind.startswith("DynamoDB Local")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
            conn.request("PUT", "/v1/wallets/w-42", body=b"{}")  # no token: refused first
            response = conn.getresponse()
            assert response.status == 401 and not seen_claims
            response.read()
            token = dev_tokens.mint("admin@o1", "o1", "admin")
            headers = {"Authorization": f"Bearer {token}"}
            conn.request("PUT", "/v1/wallets/w-42", body=b"{}", headers=headers)
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (201, {"wallet_id": "w-42"})
            assert [(c["sub"], c["org_id"], c["role"]) for c in seen_claims] == [
                ("admin@o1", "o1", "admin")
            ]
            conn.close()
            wait_until(lambda: projected, "the local stack did not project the wallet")
        finally:
            server.shutdown()
            thread.join(5)
        proc_endpoint = backend.endpoint
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in projected] == ["W#w-42"]
    # The backend was stopped with the stack.
    with pytest.raises(Exception):  # noqa: B017 - any connection error
        ddb_local.client(proc_endpoint).list_tables()
