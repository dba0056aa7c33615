"""The monthly reset job (``functions/monthly_reset/app.py``; docs/data-model.md, "Billing
periods and the reset job"): ``dispatch`` (EventBridge Scheduler) queues the wallets the due
index says are due, one SQS message each; ``handler`` (SQS, batch item failures) advances each.

Both handlers are invoked with the real event shapes of ``events/`` (the wallet ids
substituted), under moto with a real (moto) SQS queue named by ``RESET_QUEUE_URL``. Each test
has a table and a clock of its own, starting at 2026-01-31 15:00 UTC: a wallet created then has
its period end on 2026-02-28.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from credit_meter.storage import items, store, wallet_record
from credit_meter.storage.store import Store
from devtools import monitoring, table
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, handler_module, ok

Api = Callable[..., tuple[int, dict[str, str], Any]]

pytestmark = pytest.mark.usefixtures("fresh_table")

ROOT = Path(__file__).parents[2]
SCHEDULE_EVENT = json.loads((ROOT / "events/schedule-monthly-reset.json").read_text())
SQS_EVENT = json.loads((ROOT / "events/sqs-monthly-reset.json").read_text())
T0 = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
PERIOD_END = datetime(2026, 2, 28, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(T0) as fake:
        yield fake


@pytest.fixture(scope="module")
def reset_app(aws: Any) -> Any:
    """``functions/monthly_reset/app.py``, imported once ``aws`` has set the functions'
    environment (Powertools reads it at import)."""
    return handler_module("monthly_reset.app")


@pytest.fixture
def queue(reset_app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh reset queue (moto), named by ``RESET_QUEUE_URL``; yields its URL."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"reset-{id(monkeypatch)}")["QueueUrl"]
    monkeypatch.setenv("RESET_QUEUE_URL", url)
    monkeypatch.setattr(reset_app, "_sqs", None)  # the dispatcher's client, made in the mock
    yield url
    sqs.delete_queue(QueueUrl=url)


def received(url: str) -> list[dict[str, Any]]:
    """Every message waiting on the queue (taken off it), bodies parsed, with the message."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    found = []
    while True:
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300)
        messages = page.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append({"body": json.loads(message["Body"]), "message": message})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def run_dispatch(reset_app: Any) -> dict[str, Any]:
    with warnings.catch_warnings():  # a run that metered nothing publishes no metric
        warnings.filterwarnings("ignore", "No application metrics to publish")
        result: dict[str, Any] = reset_app.dispatch(copy.deepcopy(SCHEDULE_EVENT), FakeContext())
    return result


def sqs_record(wallet_id: str, n: int, body: str | None = None) -> dict[str, Any]:
    """A record of ``events/sqs-monthly-reset.json`` for another wallet (or with a raw body)."""
    record = copy.deepcopy(SQS_EVENT["Records"][0])
    sample = json.loads(record["body"])
    text = body if body is not None else json.dumps({**sample, "wallet_id": wallet_id})
    record["body"] = text
    record["md5OfBody"] = hashlib.md5(text.encode()).hexdigest()
    record["messageId"] = f"5e1f0c2a-1b9d-4c1e-9f4e-{n:012d}"
    record["receiptHandle"] = f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{n}"
    return record


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(SQS_EVENT), "Records": list(records)}


def run_worker(reset_app: Any, event: dict[str, Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No application metrics to publish")
        result: dict[str, Any] = reset_app.handler(copy.deepcopy(event), FakeContext())
    return result


def create(api: Api, wallet_id: str, plan: str = "free") -> None:
    ok(api("PUT", f"/v1/wallets/{wallet_id}", {"plan": plan}), 201)


def wallet(api: Api, wallet_id: str) -> dict[str, Any]:
    return ok(api("GET", f"/v1/wallets/{wallet_id}"), 200)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


# -- the sample events ------------------------------------------------------------------------


def test_the_sample_events_have_the_shapes_the_handlers_read() -> None:
    assert SCHEDULE_EVENT == {"job": "monthly-reset", "scheduled_time": "2026-12-01T00:05:00Z"}
    assert len(SQS_EVENT["Records"]) == 2
    for record in SQS_EVENT["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert json.loads(record["body"]).keys() == {"wallet_id", "scheduled_time"}
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()


# -- dispatch -----------------------------------------------------------------------------------


def test_dispatch_queues_exactly_the_due_wallets(
    api: Api, now: FakeClock, queue: str, reset_app: Any
) -> None:
    create(api, "ended")  # period ends Feb 28
    now.set(datetime(2026, 2, 20, 9, tzinfo=UTC))
    for wallet_id in ("promo", "later", "trial", "used-promo"):
        create(api, wallet_id, "trial" if wallet_id == "trial" else "free")  # ends Mar 20
    promo_expiry = datetime(2026, 2, 25, tzinfo=UTC)
    for wallet_id in ("promo", "used-promo"):
        grant = {"credits": "5", "source": "promo", "expires_at": iso(promo_expiry)}
        ok(api("POST", f"/v1/wallets/{wallet_id}/grants", grant), 201)
    ok(api("POST", "/v1/wallets/used-promo/charges", {"feature": "x", "credits": "5"}), 201)

    now.set(promo_expiry - timedelta(seconds=1))
    assert run_dispatch(reset_app) == {"due": 0, "queued": 0}
    assert received(queue) == []

    now.set(promo_expiry)  # due at its due_at second, not before
    assert run_dispatch(reset_app) == {"due": 2, "queued": 2}
    assert sorted(m["body"]["wallet_id"] for m in received(queue)) == ["promo", "used-promo"]

    now.set(PERIOD_END + timedelta(minutes=5))
    assert run_dispatch(reset_app) == {"due": 3, "queued": 3}
    messages = received(queue)
    assert sorted(m["body"]["wallet_id"] for m in messages) == ["ended", "promo", "used-promo"]
    # each message carries the wallet and the run's scheduled time, like the sample event
    assert sorted((m["body"] for m in messages), key=lambda b: b["wallet_id"]) == [
        {"wallet_id": w, "scheduled_time": SCHEDULE_EVENT["scheduled_time"]}
        for w in ("ended", "promo", "used-promo")
    ]
    # dispatching changes no wallet: they stay due until the worker has advanced them
    assert wallet(api, "ended")["balance"] == "50"
    assert run_dispatch(reset_app) == {"due": 3, "queued": 3}


class Recording:
    """The DynamoDB client, remembering every call (operation name and parameters)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(**params: Any) -> Any:
            self.calls.append((name, params))
            return method(**params)

        return call


def test_dispatch_reads_only_the_due_index(
    api: Api, now: FakeClock, queue: str, reset_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        create(api, f"w{n}")
    recording = Recording(store.dynamodb_client())
    monkeypatch.setattr(store, "_client", recording)
    now.set(PERIOD_END)
    assert run_dispatch(reset_app) == {"due": 3, "queued": 3}
    # one Query per shard of the keys-only index, up to now; no scan, no wallet read
    assert [name for name, _ in recording.calls] == ["query"] * wallet_record.DUE_SHARDS
    shards = set()
    for _, params in recording.calls:
        assert params["IndexName"] == wallet_record.DUE_INDEX
        values = params["ExpressionAttributeValues"]
        assert values[":upto"] == {"N": str(int(PERIOD_END.timestamp()))}
        shards.add(values[":h"]["S"])
    assert shards == {f"D#{n:02d}" for n in range(wallet_record.DUE_SHARDS)}


def test_dispatch_finds_due_wallets_in_every_shard_and_sends_ten_per_request(
    api: Api, now: FakeClock, queue: str, reset_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallets = [f"team-{n:02d}" for n in range(23)]
    for wallet_id in wallets:
        create(api, wallet_id)
    assert len({wallet_record.due_shard(w) for w in wallets}) >= 10  # spread over many shards
    sent: list[int] = []
    real = reset_app.sqs_client()

    class Counting:
        def send_message_batch(self, **params: Any) -> Any:
            sent.append(len(params["Entries"]))
            return real.send_message_batch(**params)

    monkeypatch.setattr(reset_app, "_sqs", Counting())
    now.set(PERIOD_END)
    assert run_dispatch(reset_app) == {"due": 23, "queued": 23}
    assert sorted(sent) == [3, 10, 10]
    assert sorted(m["body"]["wallet_id"] for m in received(queue)) == wallets


def test_dispatch_retries_what_sqs_refused_and_fails_when_it_cannot_queue(
    api: Api, now: FakeClock, queue: str, reset_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for wallet_id in ("alpha", "bravo", "charlie"):
        create(api, wallet_id)
    real = reset_app.sqs_client()
    refusals = {"bravo": 1, "charlie": 99}  # bravo is refused once, charlie always

    class Refusing:
        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
            refused = []
            for entry in Entries:
                wallet_id = json.loads(entry["MessageBody"])["wallet_id"]
                if refusals.get(wallet_id, 0) > 0:
                    refusals[wallet_id] -= 1
                    refused.append(entry)
            accepted = [e for e in Entries if e not in refused]
            response = {"Successful": []}
            if accepted:
                response = real.send_message_batch(QueueUrl=QueueUrl, Entries=accepted)
            response["Failed"] = [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused
            ]
            return response

    monkeypatch.setattr(reset_app, "_sqs", Refusing())
    now.set(PERIOD_END)
    with pytest.raises(reset_app.DispatchIncomplete, match=r"1 wallets not queued: \['charlie'\]"):
        run_dispatch(reset_app)
    # the others were queued (bravo on its second try), once each
    assert sorted(m["body"]["wallet_id"] for m in received(queue)) == ["alpha", "bravo"]


def test_dispatch_fails_when_the_queue_is_unreachable(
    api: Api, now: FakeClock, queue: str, reset_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(api, "alpha")
    monkeypatch.setenv("RESET_QUEUE_URL", queue + "-missing")
    now.set(PERIOD_END)
    with pytest.raises(ClientError):
        run_dispatch(reset_app)


# -- the worker -------------------------------------------------------------------------------


def test_the_worker_resets_each_wallet_once(
    api: Api, now: FakeClock, reset_app: Any, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    create(api, "w2", "pro")
    ok(api("POST", "/v1/wallets/w1/charges", {"feature": "x", "credits": "20"}), 201)
    now.set(PERIOD_END + timedelta(minutes=5))
    event = sqs_event(sqs_record("w1", 1), sqs_record("w2", 2))
    assert run_worker(reset_app, event) == {"batchItemFailures": []}
    w1, w2 = wallet(api, "w1"), wallet(api, "w2")
    assert (w1["balance"], w1["used"], w1["period"]["start"]) == ("50", "0", iso(PERIOD_END))
    # pro: 2500 unused -> 1250 roll over, 2500 granted
    assert (w2["balance"], w2["period"]["start"]) == ("3750", iso(PERIOD_END))
    project_ledger()
    entries = {
        w: ok(api("GET", f"/v1/wallets/{w}/transactions"), 200)["items"] for w in ("w1", "w2")
    }
    # SQS delivers the same batch again (a retry, a duplicate): nothing more is granted
    assert run_worker(reset_app, event) == {"batchItemFailures": []}
    assert wallet(api, "w1") == w1 and wallet(api, "w2") == w2
    # and a wallet queued twice in one batch is reset once
    now.set(datetime(2026, 3, 31, 0, 5, tzinfo=UTC))
    twice = sqs_event(sqs_record("w1", 3), sqs_record("w1", 4))
    assert run_worker(reset_app, twice) == {"batchItemFailures": []}
    assert wallet(api, "w1")["balance"] == "50"
    project_ledger()
    after = ok(api("GET", "/v1/wallets/w1/transactions"), 200)["items"]
    assert len(after) == len(entries["w1"]) + 2  # one expiry (50), one grant (50)
    assert [(e["type"], e["credits"]) for e in after[:2]] == [("grant", "50"), ("expire", "-50")]
    assert ok(api("GET", "/v1/wallets/w2/transactions"), 200)["items"] == entries["w2"]


def test_an_unknown_wallet_in_a_message_is_not_a_failure(reset_app: Any, now: FakeClock) -> None:
    assert run_worker(reset_app, sqs_event(sqs_record("gone", 1))) == {"batchItemFailures": []}


class FailingFor:
    """The DynamoDB client with ``update_item`` refused (a server error) for one wallet."""

    def __init__(self, real: Any, wallet_id: str) -> None:
        self.real = real
        self.pk = items.wallet_pk(wallet_id)
        self.refused = 0

    def update_item(self, **params: Any) -> Any:
        if params["Key"]["pk"]["S"] == self.pk:
            self.refused += 1
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem"
            )
        return self.real.update_item(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_wallet_that_fails_is_reported_and_the_others_are_reset(
    api: Api, now: FakeClock, reset_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for wallet_id in ("alpha", "bravo", "charlie"):
        create(api, wallet_id)
        ok(api("POST", f"/v1/wallets/{wallet_id}/charges", {"feature": "x", "credits": "5"}), 201)
    now.set(PERIOD_END)
    event = sqs_event(
        sqs_record("alpha", 1),
        sqs_record("bravo", 2),
        sqs_record("charlie", 3),
        sqs_record("", 4, body="not json"),
        sqs_record("", 5, body=json.dumps({"wallet": "alpha"})),
    )
    failing = FailingFor(store.dynamodb_client(), "bravo")
    with monkeypatch.context() as patched:
        patched.setattr(store, "_client", failing)
        result = run_worker(reset_app, event)
    messages = {r["messageId"]: r for r in event["Records"]}
    # bravo (the store refused), the body that is not JSON, the body without a wallet_id
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        event["Records"][n]["messageId"] for n in (1, 3, 4)
    )
    assert all(f["itemIdentifier"] in messages for f in result["batchItemFailures"])
    assert failing.refused >= 1
    assert [wallet(api, w)["balance"] for w in ("alpha", "bravo", "charlie")] == ["50", "45", "50"]
    assert wallet(api, "bravo")["period"]["end"] == iso(PERIOD_END)  # untouched, still due

    # SQS delivers the failed record again: now it goes through
    retry = sqs_event(event["Records"][1])
    assert run_worker(reset_app, retry) == {"batchItemFailures": []}
    body = wallet(api, "bravo")
    assert (body["balance"], body["used"], body["period"]["start"]) == ("50", "0", iso(PERIOD_END))


def test_a_batch_that_fails_entirely_fails_the_invocation(
    api: Api, now: FakeClock, reset_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(api, "bravo")
    now.set(PERIOD_END)
    with monkeypatch.context() as patched:
        patched.setattr(store, "_client", FailingFor(store.dynamodb_client(), "bravo"))
        with pytest.raises(BatchProcessingError):
            run_worker(reset_app, sqs_event(sqs_record("bravo", 1)))
    assert wallet(api, "bravo")["period"]["end"] == iso(PERIOD_END)


def test_dispatch_then_worker_end_to_end(
    api: Api, now: FakeClock, queue: str, reset_app: Any, project_ledger: Callable[[], None]
) -> None:
    """What the schedule and the queue do together, through a year of month ends."""
    create(api, "w1")
    now.set(datetime(2026, 2, 10, tzinfo=UTC))
    create(api, "w2")  # anchor 10
    ends = []
    moment = T0
    for _ in range(12):
        moment += timedelta(days=30)
        now.set(moment)
        run_dispatch(reset_app)
        records = [
            sqs_record(m["body"]["wallet_id"], n, body=m["message"]["Body"])
            for n, m in enumerate(received(queue))
        ]
        if records:
            assert run_worker(reset_app, sqs_event(*records)) == {"batchItemFailures": []}
        ends.append(wallet(api, "w1")["period"]["end"])
        assert run_dispatch(reset_app) == {"due": 0, "queued": 0}  # nothing left due
    assert ends[:4] == [
        iso(datetime(2026, 3, 31, tzinfo=UTC)),  # Mar 2: the period Feb 28 -> Mar 31
        iso(datetime(2026, 4, 30, tzinfo=UTC)),
        iso(datetime(2026, 5, 31, tzinfo=UTC)),
        iso(datetime(2026, 6, 30, tzinfo=UTC)),
    ]
    project_ledger()
    for wallet_id in ("w1", "w2"):
        entries = ok(
            api("GET", f"/v1/wallets/{wallet_id}/transactions", query={"limit": "100"}), 200
        )["items"]
        grants = [e for e in entries if e["type"] == "grant"]
        expiries = [e for e in entries if e["type"] == "expire"]
        # one allowance per period: the first and one per reset, never two for a period
        assert len(grants) == len(expiries) + 1
        assert all(e["credits"] == "50" for e in grants)
        assert all(e["credits"] == "-50" for e in expiries)
        assert wallet(api, wallet_id)["balance"] == "50"


def test_the_due_index_follows_each_wallet(api: Api, now: FakeClock, aws: Any) -> None:
    create(api, "w1")
    item = Store().get(wallet_record.key("w1"))
    assert item is not None
    assert (item["due_shard"], int(item["due_at"])) == (
        wallet_record.due_shard("w1"),
        int(PERIOD_END.timestamp()),
    )
    keys = aws.query(
        TableName=os.environ["TABLE_NAME"],
        IndexName=wallet_record.DUE_INDEX,
        KeyConditionExpression="due_shard = :s",
        ExpressionAttributeValues={":s": {"S": wallet_record.due_shard("w1")}},
    )["Items"]
    assert [k["pk"]["S"] for k in keys] == ["W#w1"]
    assert keys[0].keys() == {"pk", "sk", "due_shard", "due_at"}  # keys only


def test_due_shards_spread_wallets_and_are_stable() -> None:
    shards = {wallet_record.due_shard(f"wallet-{n}") for n in range(500)}
    assert shards == {f"D#{n:02d}" for n in range(wallet_record.DUE_SHARDS)}
    assert wallet_record.due_shard("acme") == wallet_record.due_shard("acme")


# -- the template -------------------------------------------------------------------------------


def _resources() -> dict[str, Any]:
    # The main template's resources and, beside them, its nested monitoring stack's (alarms).
    resources: dict[str, Any] = monitoring.load_stack()["Resources"]
    return resources


TABLE_ARN = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
DUE_INDEX_ARN = {"Fn::Sub": "${LedgerTable.Arn}/index/DueIndex"}


def _granted(function_id: str) -> set[tuple[str, str]]:
    """(action, resource) pairs of a function's inline policies; an action granted only under
    a condition (``!If [Condition, statement, !Ref AWS::NoValue]``) reads "action if Condition"."""
    policies = _resources()[function_id]["Properties"]["Policies"]
    assert all(isinstance(p, dict) and p.keys() == {"Statement"} for p in policies)
    statements = []
    for s in (s for p in policies for s in p["Statement"]):
        if "Fn::If" in s:
            condition, s, otherwise = s["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
            s = {**s, "If": condition}
        statements.append(s)
    assert {s["Effect"] for s in statements} == {"Allow"}
    return {
        (
            action + (f" if {s['If']}" if "If" in s else ""),
            json.dumps(s["Resource"], sort_keys=True),
        )
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


def test_template_has_the_sparse_keys_only_due_index() -> None:
    props = _resources()["LedgerTable"]["Properties"]
    (index,) = [
        i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == wallet_record.DUE_INDEX
    ]
    assert index["KeySchema"] == [
        {"AttributeName": "due_shard", "KeyType": "HASH"},
        {"AttributeName": "due_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert (types["due_shard"], types["due_at"]) == ("S", "N")


def test_template_schedules_the_dispatcher_with_retries_and_a_dlq() -> None:
    resources = _resources()
    function = resources["ResetDispatcherFunction"]
    props = function["Properties"]
    assert function["Type"] == "AWS::Serverless::Function"
    assert (props["CodeUri"], props["Handler"]) == ("functions/monthly_reset/", "app.dispatch")
    assert props["Layers"] == [{"Ref": "SharedLayer"}]
    assert props["Environment"]["Variables"]["RESET_QUEUE_URL"] == {"Ref": "ResetQueue"}

    (schedule,) = props["Events"].values()
    assert schedule["Type"] == "ScheduleV2"
    event = schedule["Properties"]
    assert event["ScheduleExpression"].startswith("rate(")
    # events/schedule-monthly-reset.json is what the schedule sends, the time filled in
    assert json.loads(event["Input"]) == {
        **SCHEDULE_EVENT,
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }
    assert event["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert event["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ResetDispatchDLQ", "Arn"]}}
    assert resources["ResetDispatchDLQ"]["Type"] == "AWS::SQS::Queue"
    # a run that raises (after Lambda's retries of the asynchronous invocation) lands there too
    on_failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["ResetDispatchDLQ", "Arn"]}}


def test_template_feeds_the_worker_from_the_queue_with_batch_item_failures() -> None:
    resources = _resources()
    props = resources["MonthlyResetFunction"]["Properties"]
    assert (props["CodeUri"], props["Handler"]) == ("functions/monthly_reset/", "app.handler")
    assert props["Layers"] == [{"Ref": "SharedLayer"}]
    (source,) = props["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["ResetQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= source["Properties"]["BatchSize"] <= 10

    reset_queue = resources["ResetQueue"]
    assert reset_queue["Type"] == "AWS::SQS::Queue"
    redrive = reset_queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ResetDLQ", "Arn"]}
    assert 1 <= redrive["maxReceiveCount"] <= 10
    assert resources["ResetDLQ"]["Type"] == "AWS::SQS::Queue"
    # a message is not delivered again while a worker may still be on it
    timeout = props.get("Timeout", table.load_template()["Globals"]["Function"]["Timeout"])
    assert reset_queue["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_template_gives_the_reset_functions_only_what_they_use() -> None:
    assert _granted("ResetDispatcherFunction") == {
        ("dynamodb:Query", json.dumps(DUE_INDEX_ARN)),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["ResetQueue", "Arn"]})),
        # a test deployment's runs read the test clock first
        ("dynamodb:GetItem if TestModeOn", json.dumps(TABLE_ARN)),
    }
    assert _granted("MonthlyResetFunction") == {
        ("dynamodb:GetItem", json.dumps(TABLE_ARN)),
        ("dynamodb:UpdateItem", json.dumps(TABLE_ARN)),
    }


def test_template_alarms_on_both_functions_and_both_dead_letter_queues() -> None:
    resources = _resources()
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        (json.dumps(a.get("Dimensions"), sort_keys=True), a.get("MetricName")): a for a in alarms
    }
    for function_id in ("ResetDispatcherFunction", "MonthlyResetFunction"):
        dimensions = [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
        alarm = watched[(json.dumps(dimensions), "Errors")]
        assert alarm["Namespace"] == "AWS/Lambda"
        assert alarm["AlarmActions"] == [{"Ref": "OperatorsTopic"}]
    for queue_id in ("ResetDLQ", "ResetDispatchDLQ"):
        dimensions = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
        alarm = watched[
            (json.dumps(dimensions, sort_keys=True), "ApproximateNumberOfMessagesVisible")
        ]
        assert alarm["Namespace"] == "AWS/SQS"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert alarm["AlarmActions"] == [{"Ref": "OperatorsTopic"}]
    for function_id in ("ResetDispatcherFunction", "MonthlyResetFunction"):
        log_groups = [
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::Logs::LogGroup"
            and r["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function_id}}}"}
        ]
        assert log_groups and log_groups[0]["RetentionInDays"] == 30


def test_the_worker_balances_after_a_reset_are_exact(
    api: Api, now: FakeClock, reset_app: Any
) -> None:
    create(api, "w1", "scale")
    ok(api("POST", "/v1/wallets/w1/charges", {"feature": "x", "credits": "10000.5"}), 201)
    now.set(PERIOD_END)
    assert run_worker(reset_app, sqs_event(sqs_record("w1", 1))) == {"batchItemFailures": []}
    # overage: the 0.5 deficit is written off, then 10000 granted
    assert wallet(api, "w1")["balance"] == "10000"
    assert Decimal(wallet(api, "w1")["used"]) == 0
