"""Fixtures for the HTTP API unit tests: moto, a table, and callers through the real handler.

Starting moto and making boto3 clients costs a few hundred milliseconds, so moto runs once per
test module (``aws``) and each test gets a table of its own inside it (``fresh_table``; the
schema comes from ``template.yaml``). moto copies a whole table on every transaction, so small
tables keep the tests fast. A module whose tests share one read-only setup uses
``module_table`` instead. (``moto_table`` of ``tests/conftest.py`` starts moto per test.)

* ``api``: ``api(method, path, body=None, headers=None, query=None, *, base64=False) ->
  (status, headers, json)`` through the metering Lambda handler with an API Gateway HTTP API v2
  event (``base64``: the body is sent base64-encoded, ``isBase64Encoded: true``);
* ``table_items``: the items of a wallet (or the table), to show that a request wrote nothing;
* ``project_ledger``: runs the ledger projector's handler over the table's stream.

The store and the handlers read ``TABLE_NAME`` on every request, so they follow the table.
"""

from __future__ import annotations

import base64 as b64
import importlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from credit_meter import items as stored
from credit_meter import store
from devtools import table
from devtools.apigw import FakeContext, http_event

Api = Callable[..., tuple[int, dict[str, str], Any]]

_FUNCTION_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "CreditMeter",
    "POWERTOOLS_SERVICE_NAME": "credit-meter",
}


@contextmanager
def _quiet() -> Iterator[None]:
    """Powertools warns on every invocation that publishes no metric; that is expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No application metrics to publish")
        yield


@pytest.fixture(scope="module")
def aws(aws_test_env: None) -> Iterator[Any]:
    """moto for one test module and the functions' environment; yields a DynamoDB client."""
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for key, value in _FUNCTION_ENV.items():
            mp.setenv(key, value)
        store.reset_client()  # the store caches its client: it must be made inside the mock
        try:
            yield boto3.client("dynamodb", region_name="us-east-1")
        finally:
            store.reset_client()


@contextmanager
def _table(client: Any) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp, table.temporary_table(client, "ledger-unit") as name:
        mp.setenv("TABLE_NAME", name)
        yield name


@pytest.fixture
def fresh_table(aws: Any) -> Iterator[str]:
    """An empty table for this test; ``TABLE_NAME`` names it."""
    with _table(aws) as name:
        yield name


@pytest.fixture(scope="module")
def module_table(aws: Any) -> Iterator[str]:
    """One table for every test of a module; ``TABLE_NAME`` names it."""
    with _table(aws) as name:
        yield name


def _handler_module(name: str) -> Any:
    """Import a function's module. Powertools reads its settings (the metrics namespace, ...)
    when the module is imported, so test modules import handlers through the fixtures here,
    after ``aws`` has set the environment, never at collection time. Should another test
    have imported the module earlier without that environment, the namespace is set here."""
    module = importlib.import_module(name)
    if module.metrics.namespace is None:
        module.metrics.namespace = _FUNCTION_ENV["POWERTOOLS_METRICS_NAMESPACE"]
    return module


@pytest.fixture(scope="module")
def metering_app(aws: Any) -> Any:
    """The metering handler's module (``functions/metering_api/app.py``)."""
    return _handler_module("metering_api.app")


@pytest.fixture(scope="module")
def api(metering_app: Any) -> Api:
    """Call the metering API. A dict body goes as JSON; a str or bytes body as is (with
    ``application/json`` unless a content-type header is given, ``None`` to send none); a
    list or number goes as its JSON text. With ``base64=True`` the body is sent base64-encoded
    (``isBase64Encoded``), as API Gateway sends a binary body; a body that is not UTF-8 always
    is."""
    handler = metering_app.handler

    def call(
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str | None] | None = None,
        query: str | dict[str, str] | None = None,
        *,
        base64: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        if body is not None and not isinstance(body, dict):
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
            hdrs.setdefault("content-type", "application/json")
        sent = {k: v for k, v in hdrs.items() if v is not None}  # None: leave the header out
        event = http_event(method, path, body, sent, query)
        if base64 and event.get("body") is not None and not event["isBase64Encoded"]:
            event["body"] = b64.b64encode(event["body"].encode()).decode("ascii")
            event["isBase64Encoded"] = True
        with _quiet():
            response = handler(event, FakeContext())
        out_headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        raw = response.get("body")
        return response["statusCode"], out_headers, json.loads(raw) if raw else None

    return call


@pytest.fixture(scope="module")
def table_items(aws: Any) -> Callable[..., list[dict[str, Any]]]:
    """``table_items(wallet_id=None)``: the items of one wallet's partition, or of the whole
    table (raw attribute values, sorted by key) — compare before and after a request."""

    def items(wallet_id: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": os.environ["TABLE_NAME"], "ConsistentRead": True}
        if wallet_id is not None:
            kwargs["KeyConditionExpression"] = "pk = :pk"
            kwargs["ExpressionAttributeValues"] = {":pk": {"S": stored.wallet_pk(wallet_id)}}
        read = aws.scan if wallet_id is None else aws.query
        while True:
            page = read(**kwargs)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(found, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    return items


@pytest.fixture(scope="module")
def project_ledger(aws: Any) -> Callable[[], None]:
    """Feed the table's stream to the ledger projector's handler, as Lambda would.

    Each call reads every shard from ``TRIM_HORIZON``: replaying records already projected
    rewrites identical entries (they are keyed by ``seq``), so that is harmless.
    """
    handler = _handler_module("ledger_projector.app").handler
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")

    def project() -> None:
        arn = aws.describe_table(TableName=os.environ["TABLE_NAME"])["Table"]["LatestStreamArn"]
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = streams.get_records(ShardIterator=iterator)
                if not page["Records"]:
                    break
                records.extend(page["Records"])
                iterator = page.get("NextShardIterator")
        event = {
            "Records": [
                {
                    "eventID": str(n),
                    "eventName": r["eventName"],
                    "eventSource": "aws:dynamodb",
                    "eventSourceARN": arn,
                    "dynamodb": {
                        k: v for k, v in r["dynamodb"].items() if k != "ApproximateCreationDateTime"
                    },
                }
                for n, r in enumerate(records)
            ]
        }
        with _quiet():
            result = handler(event, FakeContext())
        assert result == {"batchItemFailures": []}, result

    return project
