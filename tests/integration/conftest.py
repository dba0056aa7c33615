"""Fixtures for the integration tests: the service, the HTTP handler and the stream-projected
ledger, all on DynamoDB Local (``ddb_local_endpoint``, ``ddb_client`` and ``ddb_table`` come
from ``tests/conftest.py``).

* ``meter_table`` — a fresh table with the environment the functions read (``TABLE_NAME``, the
  DynamoDB Local endpoints, Powertools settings) and a fresh store client.
* ``metering`` — :class:`tests.services.Service` (every use case) on that table.
* ``api`` — calls ``metering_api.app.handler`` in this process: ``api(method, path, body,
  headers, query, *, as_=DEFAULT) -> (status, json)`` (``as_``: the token's claims, by default
  an owner of ``org-test`` with both scopes; ``None``: no token — see ``tests/principals.py``).
  Wallets the tests make through the service directly go in ``org-test`` too (``TEST_ORG``),
  or the API does not show them to that caller.
* ``ledger`` — a :class:`Ledger`: drains the table's stream through
  ``ledger_projector.app.handler`` and checks a wallet against the invariants of docs/domain.md.
* ``lambdas`` — the metering handler in separate worker processes, for requests that must run
  concurrently (one invocation per process at a time, as in Lambda: Powertools' resolver keeps
  the current event in a class attribute, so the handler is not meant to be shared by threads).
  They work on ``shared_table``; tests keep apart by using their own wallet ids.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.core import wallets
from credit_meter.core.catalog import catalog
from credit_meter.storage import items as stored
from credit_meter.storage import store, wallet_record
from devtools import table
from devtools.apigw import FakeContext, http_event
from devtools.stream_pump import StreamPump
from tests.ddb_clients import local_client, patient_store
from tests.helpers import results
from tests.principals import DEFAULT
from tests.services import Service

LAMBDA_WORKERS = 8

# Attributes of the wallet item that hold lists; every other empty collection is a map.
_LIST_ATTRIBUTES = frozenset({"bk", "posts"})


def function_env(endpoint: str, table_name: str) -> dict[str, str]:
    """What a deployed function would find in its environment, pointed at DynamoDB Local."""
    return {
        "TABLE_NAME": table_name,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoint,
        "POWERTOOLS_SERVICE_NAME": "credit-meter",
        "POWERTOOLS_METRICS_NAMESPACE": "CreditMeter",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


# -- the service and the handler -------------------------------------------------------------


@pytest.fixture
def meter_table(
    monkeypatch: pytest.MonkeyPatch, ddb_local_endpoint: str, ddb_table: str
) -> Iterator[str]:
    """A fresh table on DynamoDB Local that the store, the handlers and the service use."""
    for name, value in function_env(ddb_local_endpoint, ddb_table).items():
        monkeypatch.setenv(name, value)
    patient_store()
    yield ddb_table
    store.reset_client()


@pytest.fixture
def metering(meter_table: str) -> Service:
    service = Service()
    service.store.client  # noqa: B018 - make the shared client now, not from many threads
    return service


def call_handler(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
    *,
    as_: Mapping[str, Any] | None = DEFAULT,
) -> tuple[int, Any]:
    """One invocation of the metering handler as ``as_`` (the token's claims; None: no token):
    ``(status, parsed JSON body)``."""
    from metering_api.app import handler

    event = http_event(method, path, body, headers, query, claims=as_)
    response = handler(event, FakeContext())
    return _parsed(response)


def _parsed(response: dict[str, Any]) -> tuple[int, Any]:
    raw = response.get("body")
    return response["statusCode"], json.loads(raw) if raw else None


@pytest.fixture
def api(meter_table: str) -> Callable[..., tuple[int, Any]]:
    return call_handler


# -- the stream-projected ledger -------------------------------------------------------------


def _typed_empty(value: Any, name: str | None = None) -> Any:
    """DynamoDB Local 3.x writes an empty map or list in a stream image as a bare ``{}``
    (awslabs/amazon-dynamodb-local-samples#37); DynamoDB and Lambda send ``{"M": {}}`` or
    ``{"L": []}``. Put the type back so the projector sees what it would see in AWS."""
    if value == {}:
        return {"L": []} if name in _LIST_ATTRIBUTES else {"M": {}}
    if "M" in value:
        return {"M": {k: _typed_empty(v) for k, v in value["M"].items()}}
    if "L" in value:
        return {"L": [_typed_empty(v) for v in value["L"]]}
    return value


def _as_lambda_sends(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    for record in event.get("Records", []):
        change = record.get("dynamodb", {})
        for image in ("NewImage", "OldImage"):
            if image in change:
                change[image] = {k: _typed_empty(v, k) for k, v in change[image].items()}
    return event


@dataclass
class Ledger:
    """The table's stream, projected by the real projector handler, and checks on the result."""

    client: Any
    table: str
    pump: StreamPump
    records: list[dict[str, Any]] = field(default_factory=list)

    def drain(self) -> int:
        """Project every stream record not yet projected; returns how many were delivered."""
        return self.pump.drain()

    def replay(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Hand records the projector already saw to it again (a redelivered batch)."""
        from ledger_projector.app import handler

        event = {"Records": copy.deepcopy(self.records if records is None else records)}
        return handler(event, FakeContext())

    def wallet_item(self, wallet_id: str) -> dict[str, Any]:
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": stored.wallet_pk(wallet_id)}, "sk": {"S": wallet_record.WALLET_SK}},
            ConsistentRead=True,
        )
        return store.from_item(response["Item"])

    def items(self, wallet_id: str | None = None, prefix: str = "") -> list[dict[str, Any]]:
        """Items in key order: one wallet's (sort keys starting with ``prefix``) or all."""
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        if wallet_id is not None:
            kwargs["KeyConditionExpression"] = "pk = :pk AND begins_with(sk, :p)"
            kwargs["ExpressionAttributeValues"] = {
                ":pk": {"S": stored.wallet_pk(wallet_id)},
                ":p": {"S": prefix},
            }
        call = self.client.query if wallet_id is not None else self.client.scan
        found: list[dict[str, Any]] = []
        while True:
            page = call(**kwargs)
            found.extend(store.from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda i: (i["pk"], i["sk"]))

    def entries(self, wallet_id: str) -> list[dict[str, Any]]:
        """The wallet's ledger entries, in ``seq`` order."""
        return self.items(wallet_id, stored.ENTRY_PREFIX)

    def check(self, wallet_id: str) -> list[dict[str, Any]]:
        """Drain the projection, then assert docs/domain.md's invariants on the wallet;
        returns its entries."""
        self.drain()
        return self.check_item(self.wallet_item(wallet_id), self.entries(wallet_id))

    @staticmethod
    def check_item(item: dict[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """docs/domain.md on one wallet item and its projected entries (invariants 1-3, buckets)."""
        balance, held, available = item["bal"], item["held"], item["avail"]
        assert available == balance - held, f"available {available} != {balance} - {held}"
        holds = item.get("hd", {})
        assert held == sum((Decimal(h["c"]) for h in holds.values()), Decimal(0))

        seqs = [int(e["seq"]) for e in entries]
        assert seqs == list(range(1, int(item["seq"]) + 1)), "ledger entries missing or extra"
        ids = [e["transaction_id"] for e in entries]
        assert len(set(ids)) == len(ids), "a posting was projected twice"
        running = Decimal(0)
        for entry in entries:
            running += entry["credits"]
            assert entry["balance_after"] == running, f"entry {entry['seq']}: wrong balance_after"
            if entry["type"] == "charge":  # accepted only with available >= its cost
                assert entry["balance_after"] >= 0, f"charge {entry['seq']} overspent"
        assert running == balance, f"Σ ledger credits {running} != balance {balance}"

        buckets = wallet_record.buckets(item)
        order = sorted(buckets, key=lambda b: wallets.burn_key(b, catalog()))
        assert [b.id for b in buckets] == [b.id for b in order], "buckets not in burn order"
        views = wallets.remaining(buckets, Decimal(item["drawn"]))
        left = sum((v.remaining for v in views), Decimal(0))
        assert all(0 <= v.remaining <= v.bucket.amount for v in views)
        if balance >= 0:
            assert left == balance, f"bucket remainders {left} != balance {balance}"
        else:
            assert left == 0 and wallets.deficit(buckets, Decimal(item["drawn"])) == -balance
        return entries


def _ledger(client: Any, endpoint: str, table_name: str) -> Ledger:
    from ledger_projector.app import handler

    arn = client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def project(event: dict[str, Any], context: Any) -> Any:
        event = _as_lambda_sends(event)
        with lock:
            seen.extend(copy.deepcopy(event["Records"]))
        return handler(event, context)

    pump = StreamPump(lambda: local_client(endpoint, "dynamodbstreams"), arn, project)
    return Ledger(client, table_name, pump, seen)


@pytest.fixture
def ledger(meter_table: str, ddb_client: Any, ddb_local_endpoint: str) -> Ledger:
    return _ledger(ddb_client, ddb_local_endpoint, meter_table)


# -- the handler in Lambda-like worker processes ---------------------------------------------


@pytest.fixture(scope="session")
def shared_table(ddb_client: Any) -> Iterator[str]:
    """One table for the tests that use ``lambdas``; each test uses its own wallets."""
    with table.temporary_table(ddb_client, "ledger-shared") as name:
        yield name


class Lambdas:
    """The metering handler in worker processes: ``call_all`` runs requests concurrently."""

    def __init__(self, pool: ProcessPoolExecutor, table_name: str) -> None:
        self.pool = pool
        self.table = table_name

    @staticmethod
    def call(*args: Any, **kwargs: Any) -> tuple[int, Any]:
        """One request in this process (on the same table): set-up and look-ups."""
        return call_handler(*args, **kwargs)

    def call_all(self, requests: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        """Run ``http_event`` keyword sets concurrently (as :data:`DEFAULT` unless one gives
        ``claims``); results in request order."""
        from metering_api.app import handler

        futures = [
            self.pool.submit(handler, http_event(**{"claims": DEFAULT, **request}), FakeContext())
            for request in requests
        ]
        return [_parsed(r) for r in results(futures, "metering invocations")]


@contextmanager
def _warm_pool(
    handler: Callable[..., Any], workers: int, env: dict[str, str], warm: dict[str, Any]
) -> Iterator[ProcessPoolExecutor]:
    """``workers`` spawned processes that run ``handler`` with ``env`` in their environment,
    every one started (and the handler imported) before the pool is handed out."""
    context = multiprocessing.get_context("spawn")
    with pytest.MonkeyPatch.context() as mp:
        # Spawned workers start with this environment (and this sys.path).
        for name, value in env.items():
            mp.setenv(name, value)
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=patient_store)
        # Twice as many calls as workers, submitted at once: the pool starts all its workers.
        started = [pool.submit(handler, warm, FakeContext()) for _ in range(workers * 2)]
        results(started, "warm-up invocations")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def lambda_pool(ddb_local_endpoint: str, shared_table: str) -> Iterator[ProcessPoolExecutor]:
    from metering_api.app import handler

    env = function_env(ddb_local_endpoint, shared_table)
    warm = http_event("GET", "/v1/wallets/warm-up", claims=DEFAULT)
    with _warm_pool(handler, LAMBDA_WORKERS, env, warm) as pool:
        yield pool


@pytest.fixture
def lambdas(
    lambda_pool: ProcessPoolExecutor,
    shared_table: str,
    monkeypatch: pytest.MonkeyPatch,
    ddb_local_endpoint: str,
) -> Iterator[Lambdas]:
    """Concurrent handler calls on ``shared_table``; this process's store uses it too."""
    for name, value in function_env(ddb_local_endpoint, shared_table).items():
        monkeypatch.setenv(name, value)
    patient_store()
    yield Lambdas(lambda_pool, shared_table)
    store.reset_client()


@pytest.fixture(scope="session")
def _shared_projection(ddb_client: Any, ddb_local_endpoint: str, shared_table: str) -> Ledger:
    return _ledger(ddb_client, ddb_local_endpoint, shared_table)


@pytest.fixture
def shared_ledger(lambdas: Lambdas, _shared_projection: Ledger) -> Ledger:
    """The ledger of ``shared_table`` (its projection carries on from earlier tests)."""
    return _shared_projection


# -- the Stripe webhook handler in worker processes ------------------------------------------

# A made-up endpoint secret, only ever used to sign test events (never a real one).
FAKE_WEBHOOK_SECRET = "whsec_test_fake_0000000000000000000000000000"
WEBHOOK_WORKERS = 6


class Webhooks:
    """The Stripe webhook handler in worker processes: ``post_all`` delivers events
    concurrently, as Stripe does (each delivery its own invocation)."""

    def __init__(self, pool: ProcessPoolExecutor, table_name: str, secret: str) -> None:
        self.pool = pool
        self.table = table_name
        self.secret = secret

    def request(self, event: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
        """The ``http_event`` keywords of one delivery of ``event``, signed now."""
        from devtools import stripe_events

        payload = stripe_events.encode(event)
        signature = stripe_events.sign(payload, secret or self.secret)
        return {
            "method": "POST",
            "path": "/v1/webhooks/stripe",
            "body": payload,
            "headers": {"content-type": "application/json", "stripe-signature": signature},
        }

    def post_all(self, requests: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        """Run ``http_event`` keyword sets concurrently; results in request order."""
        from stripe_webhook.app import handler

        futures = [
            self.pool.submit(handler, http_event(**request), FakeContext()) for request in requests
        ]
        return [_parsed(r) for r in results(futures, "webhook deliveries")]


@pytest.fixture(scope="session")
def webhook_pool(ddb_local_endpoint: str, shared_table: str) -> Iterator[ProcessPoolExecutor]:
    """Worker processes running the Stripe webhook function on ``shared_table``."""
    from stripe_webhook.app import handler

    env = function_env(ddb_local_endpoint, shared_table)
    env["STRIPE_WEBHOOK_SECRET"] = FAKE_WEBHOOK_SECRET
    warm = http_event("GET", "/v1/webhooks/warm-up")
    with _warm_pool(handler, WEBHOOK_WORKERS, env, warm) as pool:
        yield pool


@pytest.fixture
def webhooks(
    webhook_pool: ProcessPoolExecutor,
    shared_table: str,
    monkeypatch: pytest.MonkeyPatch,
    ddb_local_endpoint: str,
) -> Iterator[Webhooks]:
    """Concurrent webhook deliveries on ``shared_table``; this process's store uses it too
    (and has the same endpoint secret, for in-process calls of the handler)."""
    for name, value in function_env(ddb_local_endpoint, shared_table).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", FAKE_WEBHOOK_SECRET)
    patient_store()
    yield Webhooks(webhook_pool, shared_table, FAKE_WEBHOOK_SECRET)
    store.reset_client()


@pytest.fixture
def webhook_ledger(webhooks: Webhooks, _shared_projection: Ledger) -> Ledger:
    """The ledger of ``shared_table`` for webhook tests (the same projection as
    ``shared_ledger``, without starting the metering workers)."""
    return _shared_projection
