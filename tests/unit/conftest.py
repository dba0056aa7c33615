"""Fixtures for the HTTP API unit tests: moto, a table, and callers through the real handler.

Starting moto and making boto3 clients costs a few hundred milliseconds, so moto runs once per
test module (``aws``) and each test gets a table of its own inside it (``fresh_table``; the
schema comes from ``template.yaml``). moto copies a whole table on every transaction, so small
tables keep the tests fast. A module whose tests share one read-only setup uses
``module_table`` instead. (``moto_table`` of ``tests/conftest.py`` starts moto per test.)

* ``api``: ``api(method, path, body=None, headers=None, query=None, *, base64=False,
  as_=DEFAULT) -> (status, headers, json)`` through the metering Lambda handler with an API
  Gateway HTTP API v2 event (``base64``: the body is sent base64-encoded,
  ``isBase64Encoded: true``; ``as_``: the token's claims, by default an owner of ``org-test``
  with both scopes, ``None`` for a request without a token — see ``tests/principals.py``);
* ``table_items``: the items of a wallet (or the table), to show that a request wrote nothing;
* ``project_ledger``: runs the ledger projector's handler over the table's stream.

The store and the handlers read ``TABLE_NAME`` on every request, so they follow the table.
"""

from __future__ import annotations

import base64 as b64
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from credit_meter.controls import notify
from credit_meter.storage import items as stored
from credit_meter.storage import store
from devtools import table
from devtools.apigw import FakeContext, http_event
from tests.helpers import handler_module
from tests.principals import DEFAULT

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
        # The store and the alerts' publisher cache their clients: made inside the mock.
        store.reset_client()
        notify.reset_clients()
        try:
            yield boto3.client("dynamodb", region_name="us-east-1")
        finally:
            store.reset_client()
            notify.reset_clients()


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


def _invoke(
    handler: Callable[..., dict[str, Any]], event: dict[str, Any], *, base64: bool = False
) -> tuple[int, dict[str, str], Any]:
    """One invocation of an HTTP function's handler with an API Gateway event: ``(status,
    headers, body)``, the body parsed when it is JSON. ``base64``: send the body
    base64-encoded (``isBase64Encoded``), as API Gateway sends a binary body."""
    if base64 and event.get("body") is not None and not event["isBase64Encoded"]:
        event["body"] = b64.b64encode(event["body"].encode()).decode("ascii")
        event["isBase64Encoded"] = True
    with _quiet():
        response = handler(event, FakeContext())
    out_headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    raw = response.get("body")
    if raw and not out_headers.get("content-type", "").endswith("json"):
        return response["statusCode"], out_headers, raw  # a CSV file, say
    return response["statusCode"], out_headers, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def metering_app(aws: Any) -> Any:
    """The metering handler's module (``functions/metering_api/app.py``)."""
    return handler_module("metering_api.app")


@pytest.fixture(scope="module")
def api(metering_app: Any) -> Api:
    """Call the metering API. A dict body goes as JSON; a str or bytes body as is (with
    ``application/json`` unless a content-type header is given, ``None`` to send none); a
    list or number goes as its JSON text. With ``base64=True`` the body is sent base64-encoded
    (``isBase64Encoded``), as API Gateway sends a binary body; a body that is not UTF-8 always
    is. ``as_``: the caller's claims (default: an owner of ``org-test`` with both scopes;
    None: no token)."""
    handler = metering_app.handler

    def call(
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str | None] | None = None,
        query: str | dict[str, str] | None = None,
        *,
        base64: bool = False,
        as_: Mapping[str, Any] | None = DEFAULT,
    ) -> tuple[int, dict[str, str], Any]:
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        if body is not None and not isinstance(body, dict):
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
            hdrs.setdefault("content-type", "application/json")
        sent = {k: v for k, v in hdrs.items() if v is not None}  # None: leave the header out
        event = http_event(method, path, body, sent, query, claims=as_)
        return _invoke(handler, event, base64=base64)

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


def _read_stream(aws: Any, streams: Any) -> tuple[str, list[dict[str, Any]]]:
    """The current table's stream ARN and all its records from ``TRIM_HORIZON``, in order."""
    arn = aws.describe_table(TableName=os.environ["TABLE_NAME"])["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
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
    return arn, records


def _lambda_record(arn: str, record: dict[str, Any], event_id: str) -> dict[str, Any]:
    """A stream record shaped as Lambda's DynamoDB stream event delivers it."""
    return {
        "eventID": event_id,
        "eventName": record["eventName"],
        "eventSource": "aws:dynamodb",
        "eventSourceARN": arn,
        "dynamodb": {
            k: v for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"
        },
    }


@pytest.fixture(scope="module")
def stream_event(aws: Any) -> Callable[[], dict[str, Any]]:
    """The table's whole stream, from ``TRIM_HORIZON``, as the Lambda event a stream consumer
    gets (every shard, in order)."""
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")

    def event() -> dict[str, Any]:
        arn, records = _read_stream(aws, streams)
        return {"Records": [_lambda_record(arn, r, str(n)) for n, r in enumerate(records)]}

    return event


@pytest.fixture(scope="module")
def project_ledger(stream_event: Callable[[], dict[str, Any]]) -> Callable[[], None]:
    """Feed the table's stream to the ledger projector's handler, as Lambda would.

    Each call reads every shard from ``TRIM_HORIZON``: replaying records already projected
    rewrites identical entries (they are keyed by ``seq``) and adds to no rollup twice.
    """
    handler = handler_module("ledger_projector.app").handler

    def project() -> None:
        with _quiet():
            result = handler(stream_event(), FakeContext())
        assert result == {"batchItemFailures": []}, result

    return project


# -- Stripe: the webhook function, the alerts function (auto top-up), a fake Stripe API ------

# Obviously fake values: the functions read them from the environment
# (credit_meter.storage.secret_values).
FAKE_STRIPE_ENV = {
    "STRIPE_WEBHOOK_SECRET": "whsec_unit_fake_signing_secret",
    "STRIPE_API_KEY": "sk_test_unit_fake_key_DO_NOT_LEAK_42",
}

Webhook = Callable[..., tuple[int, dict[str, str], Any]]


@pytest.fixture(scope="module")
def stripe_env(aws: Any) -> Iterator[dict[str, str]]:
    """``STRIPE_WEBHOOK_SECRET`` and ``STRIPE_API_KEY`` set to fake values (and no
    ``STRIPE_API_BASE``) for the module; the gateway's cached client is dropped around it."""
    from credit_meter.payments import stripe_gateway

    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_STRIPE_ENV.items():
            mp.setenv(key, value)
        mp.delenv("STRIPE_API_BASE", raising=False)
        stripe_gateway.reset_client()
        try:
            yield dict(FAKE_STRIPE_ENV)
        finally:
            stripe_gateway.reset_client()


@pytest.fixture(scope="module")
def fake_stripe(stripe_env: dict[str, str]) -> Iterator[Any]:
    """A :class:`devtools.fake_stripe.FakeStripe` on a free port of 127.0.0.1 for the module,
    with ``STRIPE_API_BASE`` pointing the gateway at it. Its ``requests`` are cleared before
    each test by ``stripe_requests``; tests that use the fake directly see them all."""
    from credit_meter.payments import stripe_gateway
    from devtools.fake_stripe import FakeStripe

    with FakeStripe() as fake, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRIPE_API_BASE", fake.base_url)
        stripe_gateway.reset_client()
        try:
            yield fake
        finally:
            stripe_gateway.reset_client()


@pytest.fixture
def stripe_requests(fake_stripe: Any) -> Any:
    """The fake Stripe with its request log and its idempotency keys forgotten for this test
    (each test's table starts a wallet's story again, so ``auto-topup:w1:1`` comes back);
    ``.requests`` then holds what this test made the functions send."""
    with fake_stripe._lock:
        fake_stripe.requests.clear()
        fake_stripe._idempotency.clear()
    return fake_stripe


@pytest.fixture(scope="module")
def webhook_app(stripe_env: dict[str, str]) -> Any:
    """The Stripe webhook handler's module (``functions/stripe_webhook/app.py``)."""
    return handler_module("stripe_webhook.app")


@pytest.fixture(scope="module")
def webhook(webhook_app: Any, stripe_env: dict[str, str]) -> Webhook:
    """Deliver a Stripe event to the webhook handler as API Gateway would:
    ``webhook(event_or_body, *, secret=None, timestamp=None, signature=None, headers=None,
    base64=False) -> (status, headers, json)``. A dict is encoded as Stripe sends it and signed
    with ``secret`` (default: the function's) at ``timestamp`` (default: now); bytes or str
    are sent as they are, signed the same way unless ``signature`` is given (``""``: no
    ``Stripe-Signature`` header at all)."""
    from devtools import stripe_events as se

    handler = webhook_app.handler

    def deliver(
        evt: dict[str, Any] | bytes | str,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        base64: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        if isinstance(evt, dict):
            payload = se.encode(evt)
        else:
            payload = evt.encode() if isinstance(evt, str) else evt
        if signature is None:
            signature = se.sign(payload, secret or stripe_env["STRIPE_WEBHOOK_SECRET"], timestamp)
        hdrs = {"content-type": "application/json; charset=utf-8", "user-agent": "Stripe/1.0"}
        if signature:
            hdrs["stripe-signature"] = signature
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        event = http_event("POST", "/v1/webhooks/stripe", payload, hdrs)
        return _invoke(handler, event, base64=base64)

    return deliver


@pytest.fixture(scope="module")
def alerts_app(stripe_env: dict[str, str]) -> Any:
    """The alerts handler's module (``functions/alerts/app.py``): the table stream's second
    reader, which publishes alerts and runs the auto top-up. No event bus or topic is set, so
    alerts go to the local sink (the log) unless a test sets them."""
    return handler_module("alerts.app")


@pytest.fixture(scope="module")
def stream_records(aws: Any) -> Callable[[], list[dict[str, Any]]]:
    """``stream_records()``: the records of the current table's stream not returned before,
    in order, shaped as Lambda's DynamoDB stream event delivers them (``eventID``,
    ``eventName``, ``dynamodb`` with ``Keys``, ``NewImage``, ``OldImage``,
    ``SequenceNumber``)."""
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    seen: dict[str, set[str]] = {}

    def records() -> list[dict[str, Any]]:
        arn, found = _read_stream(aws, streams)
        done = seen.setdefault(arn, set())
        fresh = []
        for r in found:
            number = r["dynamodb"]["SequenceNumber"]
            if number not in done:
                done.add(number)
                fresh.append(_lambda_record(arn, r, number))
        return fresh

    return records
