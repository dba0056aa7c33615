"""Alerts delivered by the stream's second reader (``functions/alerts/app.py``): each alert once
to the event bus and once to the topic, however often the stream replays its record.

moto plays the table, EventBridge and SNS. What subscribers receive is observed the way a
subscriber would: an EventBridge rule on the bus targets one SQS queue, and another queue is
subscribed to the topic. Wallet images are built in the test (``acme`` of
``events/alerts-stream.json`` and variations); none of these wallets has auto top-up on, so the
handler's auto top-up step does nothing with them.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from credit_meter.controls import notify
from credit_meter.core import alerts
from credit_meter.core.alerts import Alert
from credit_meter.storage.store import from_item, to_item
from credit_meter.storage.wallet_record import alert_facts
from devtools import table
from devtools.apigw import FakeContext

EVENTS = Path(__file__).parents[2] / "events"
ROOT = Path(__file__).parents[2]
Json = dict[str, Any]
STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/ledger-unit/stream/2026-11-21T00:00:00.000"
)

pytestmark = pytest.mark.usefixtures("fresh_table")


def crossings(
    old: dict[str, Any] | None, new: dict[str, Any], record: str, occurred_at: float | None = None
) -> list[Alert]:
    """:func:`alerts.crossings` on stored images, as the alerts function calls it."""
    before = None if old is None else alert_facts(old)
    return alerts.crossings(before, alert_facts(new), record, occurred_at=occurred_at)


def _sample() -> Json:
    event: Json = json.loads((EVENTS / "alerts-stream.json").read_text())
    return event


BASE = from_item(_sample()["Records"][0]["dynamodb"]["OldImage"])  # acme: used 360 of 500


def spent(wallet_id: str, used: int, **changes: Any) -> Json:
    image = dict(BASE, wallet_id=wallet_id, pk=f"W#{wallet_id}")
    image.update(used=Decimal(used), bal=Decimal(500 - used), avail=Decimal(500 - used))
    image.update(changes)
    return image


_sequence = iter(range(1, 10**9))


def record(old: Json | None, new: Json) -> Json:
    """A stream record of one wallet write, as Lambda delivers it."""
    n = next(_sequence)
    change: Json = {
        "ApproximateCreationDateTime": 1795241000 + n,
        "Keys": {"pk": {"S": f"W#{new['wallet_id']}"}, "sk": {"S": "W"}},
        "NewImage": to_item(new),
        "SequenceNumber": f"44215845{n:020d}",
        "SizeBytes": 1500,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        change["OldImage"] = to_item(old)
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "MODIFY" if old is not None else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": STREAM_ARN,
    }


def expected(records: list[Json]) -> list[Alert]:
    """What the records should publish, computed straight from the images."""
    found = []
    for r in records:
        change = r["dynamodb"]
        old = from_item(change["OldImage"]) if "OldImage" in change else None
        found += crossings(
            old,
            from_item(change["NewImage"]),
            change["SequenceNumber"],
            occurred_at=change["ApproximateCreationDateTime"],
        )
    return found


# -- subscribers ----------------------------------------------------------------------------


@dataclass
class Subscribers:
    """An SQS queue behind an EventBridge rule on the bus, another subscribed to the topic."""

    sqs: Any
    events_queue: str
    topic_queue: str

    def _drain(self, url: str) -> list[Json]:
        got = []
        while True:
            page = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            if not page.get("Messages"):
                return got
            for m in page["Messages"]:
                got.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def events(self) -> list[Json]:
        """EventBridge events the rule delivered since the last call."""
        return self._drain(self.events_queue)

    def notifications(self) -> list[Json]:
        """SNS notifications (the SQS envelope: Subject, Message, MessageAttributes)."""
        return self._drain(self.topic_queue)


@pytest.fixture
def subscribers(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Subscribers:
    suffix = uuid.uuid4().hex[:8]
    events, sns, sqs = (boto3.client(s, region_name="us-east-1") for s in ("events", "sns", "sqs"))

    def queue(name: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=f"{name}-{suffix}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    bus = f"credit-meter-alerts-{suffix}"
    events.create_event_bus(Name=bus)
    events_url, events_arn = queue("bus-target")
    # The rule a subscriber would write (docs/events.md).
    pattern = {"source": ["credit-meter"], "detail-type": [{"prefix": "credits."}, "limit.reached"]}
    events.put_rule(Name="all-alerts", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="all-alerts", EventBusName=bus, Targets=[{"Id": "queue", "Arn": events_arn}]
    )
    topic = sns.create_topic(Name=f"alerts-{suffix}")["TopicArn"]
    topic_url, topic_arn = queue("topic-subscriber")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=topic_arn)
    monkeypatch.setenv("EVENT_BUS_NAME", bus)
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    return Subscribers(sqs, events_url, topic_url)


Run = Callable[[list[Json]], list[str]]


@pytest.fixture
def run(alerts_app: Any) -> Run:
    """``run(records)``: one batch through the real handler; returns the sequence numbers it
    reported as batch item failures."""

    def call(records: list[Json]) -> list[str]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "No application metrics to publish")
            result = alerts_app.handler({"Records": records}, FakeContext())
        return [f["itemIdentifier"] for f in result["batchItemFailures"]]

    return call


@pytest.fixture
def fired_metrics(alerts_app: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the metrics the handler adds, in order."""
    names: list[str] = []
    add = alerts_app.metrics.add_metric

    def spy(name: str, **kwargs: Any) -> None:
        names.append(name)
        add(name=name, **kwargs)

    monkeypatch.setattr(alerts_app.metrics, "add_metric", spy)
    return names


# -- the sample event ------------------------------------------------------------------------


def test_the_sample_stream_event_fires_75_and_90_percent(
    run: Run, subscribers: Subscribers, fired_metrics: list[str]
) -> None:
    event = _sample()
    assert run(event["Records"]) == []
    want = expected(event["Records"])
    assert [a.detail["threshold"]["value"] for a in want] == ["75", "90"]

    got = subscribers.events()
    assert sorted(e["detail"]["threshold"]["value"] for e in got) == ["75", "90"]
    for e in got:
        assert (e["source"], e["detail-type"]) == ("credit-meter", "credits.threshold_crossed")
        assert e["time"] == "2026-11-21T06:03:20Z"  # the record's creation time
    assert sorted((e["detail"] for e in got), key=lambda d: d["id"]) == sorted(
        (a.detail for a in want), key=lambda d: d["id"]
    )

    sent = sorted(subscribers.notifications(), key=lambda n: n["Subject"])
    assert [n["Subject"] for n in sent] == [
        "Credit Meter: wallet acme has used 75% of its allowance",
        "Credit Meter: wallet acme has used 90% of its allowance",
    ]
    for n in sent:
        message = json.loads(n["Message"])
        assert message["type"] == "credits.threshold_crossed"
        assert message["wallet_id"] == "acme" and message["used"] == "460"
        assert n["MessageAttributes"]["event_type"] == {
            "Type": "String",
            "Value": "credits.threshold_crossed",
        }
        assert n["MessageAttributes"]["wallet_id"]["Value"] == "acme"
    assert fired_metrics.count("AlertsFired") == 2
    assert fired_metrics.count("AlertsThresholdCrossed") == 2


def test_the_claims_live_outside_every_wallet_partition(
    run: Run, subscribers: Subscribers, aws: Any, fresh_table: str
) -> None:
    assert run(_sample()["Records"]) == []
    items = aws.scan(TableName=fresh_table)["Items"]
    assert len(items) == 4  # 2 alerts x (bus, topic)
    assert {i["pk"]["S"] for i in items} == {"IDEMPOTENCY#alerts"}
    assert sorted(i["sk"]["S"].rsplit("#", 1)[0] for i in items) == [
        "ALERT#events",
        "ALERT#events",
        "ALERT#sns",
        "ALERT#sns",
    ]
    assert {i["status"]["S"] for i in items} == {"COMPLETED"}
    # Kept past the stream's 24 hours of retention, then removed by the table's TTL.
    assert all(int(i["ttl"]["N"]) > time.time() + 24 * 3600 for i in items)


# -- exactly once per crossing, whatever the stream replays ------------------------------------


def test_a_batch_replayed_publishes_each_alert_once(
    run: Run, subscribers: Subscribers, fired_metrics: list[str]
) -> None:
    w1 = [spent("w1", 300), spent("w1", 380), spent("w1", 460), spent("w1", 470)]
    w2 = [spent("w2", 490), spent("w2", 500)]
    batch = [record(w1[0], w1[1]), record(w2[0], w2[1]), record(w1[1], w1[2])]
    batch.append(record(w1[2], w1[3]))
    want = expected(batch)
    assert sorted((a.wallet_id, a.key) for a in want) == [
        ("w1", "consumed_percent:75"),
        ("w1", "consumed_percent:90"),
        ("w2", "consumed_percent:100"),
        ("w2", "depleted"),
    ]

    assert run(batch) == []
    assert run(batch) == []  # the same batch again (a retry after a timeout, say)
    assert run(batch[2:]) == []  # and its tail once more
    events, notes = subscribers.events(), subscribers.notifications()
    assert sorted(e["detail"]["id"] for e in events) == sorted(a.id for a in want)
    assert sorted(json.loads(n["Message"])["id"] for n in notes) == sorted(a.id for a in want)
    assert fired_metrics.count("AlertsFired") == 4  # first deliveries only


def test_a_failing_publish_fails_only_its_record_and_the_retry_publishes_it_once(
    run: Run, subscribers: Subscribers, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [
        record(spent("w1", 370), spent("w1", 380)),
        record(spent("w2", 370), spent("w2", 380)),
        record(spent("w3", 370), spent("w3", 380)),
    ]
    real_topic = notify._to_topic
    outage = {"w2"}

    def flaky_topic(topic: str) -> notify.Publisher:
        publish = real_topic(topic)

        def maybe(alert: Alert) -> None:
            if alert.wallet_id in outage:
                raise ConnectionError("SNS unreachable")
            publish(alert)

        return maybe

    monkeypatch.setattr(notify, "_to_topic", flaky_topic)
    failed = run(batch)
    assert failed == [batch[1]["dynamodb"]["SequenceNumber"]]
    # The bus took w2's alert before the topic failed; the topic has the others.
    assert sorted(e["detail"]["wallet_id"] for e in subscribers.events()) == ["w1", "w2", "w3"]
    assert sorted(json.loads(n["Message"])["wallet_id"] for n in subscribers.notifications()) == [
        "w1",
        "w3",
    ]

    # Lambda retries from the failed record: it and everything after it.
    outage.clear()
    assert run(batch[1:]) == []
    assert subscribers.events() == []  # the bus already had all three
    (note,) = subscribers.notifications()
    assert json.loads(note["Message"])["wallet_id"] == "w2"
    assert run(batch) == []
    assert (subscribers.events(), subscribers.notifications()) == ([], [])


def test_wallets_interleaved_in_any_order_publish_the_same_alerts(
    run: Run, aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    histories = {
        "w1": [spent("w1", u) for u in (0, 200, 380, 0, 460, 500)],
        "w2": [spent("w2", u) for u in (450, 470, 480, 499, 500)]
        + [dict(spent("w2", 500), bal=Decimal(300), avail=Decimal(300))],
        "w3": [spent("w3", u, lat=Decimal(100)) for u in (50, 150, 420, 430)],
    }
    per_wallet = {
        w: [record(a, b) for a, b in itertools.pairwise(images)] for w, images in histories.items()
    }

    def interleaved(seed: int) -> list[Json]:
        # The stream keeps each wallet's writes in order; across wallets anything goes.
        queues = {w: list(rs) for w, rs in per_wallet.items()}
        order, rnd = [], random.Random(seed)
        while any(queues.values()):
            w = rnd.choice([w for w, q in queues.items() if q])
            order.append(queues[w].pop(0))
        return order

    def published(records: list[Json], name: str) -> set[tuple[str, str, str]]:
        sink = tmp_path / f"{name}.jsonl"
        monkeypatch.setenv("ALERTS_FILE", str(sink))
        with table.temporary_table(aws, f"ledger-{name}") as other:
            monkeypatch.setenv("TABLE_NAME", other)
            for n in range(0, len(records), 4):  # batches of 4
                assert run(records[n : n + 4]) == []
        lines = [json.loads(line) for line in sink.read_text().splitlines()]
        return {(x["id"], x["type"], x["wallet_id"]) for x in lines}

    first = published(interleaved(1), "a")
    assert published(interleaved(2), "b") == first
    assert published(interleaved(3), "c") == first
    by_wallet = sorted((w, t) for _, t, w in first)
    assert by_wallet == [
        ("w1", "credits.depleted"),
        ("w1", "credits.threshold_crossed"),  # 75 (before the reset)
        ("w1", "credits.threshold_crossed"),  # 75 again (after it)
        ("w1", "credits.threshold_crossed"),  # 90
        ("w1", "credits.threshold_crossed"),  # 100
        ("w2", "credits.depleted"),
        ("w2", "credits.restored"),
        ("w2", "credits.threshold_crossed"),  # 100 (it was past 90 from the start)
        ("w3", "credits.threshold_crossed"),  # spend 100
        ("w3", "credits.threshold_crossed"),  # 75
    ]


# -- the local sink --------------------------------------------------------------------------


def test_without_bus_or_topic_alerts_go_to_the_log_and_the_alerts_file(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    monkeypatch.delenv("ALERTS_TOPIC_ARN", raising=False)
    sink = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("ALERTS_FILE", str(sink))
    records = _sample()["Records"]
    assert run(records) == []
    assert run(records) == []  # replayed: nothing new
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [(x["type"], x["threshold"]["value"]) for x in lines] == [
        ("credits.threshold_crossed", "75"),
        ("credits.threshold_crossed", "90"),
    ]
    assert lines == [{"type": a.detail_type, **a.detail} for a in expected(records)]
    logged = [r for r in caplog.records if r.getMessage().startswith("Credit Meter:")]
    assert [r.getMessage() for r in logged] == [
        "Credit Meter: wallet acme has used 75% of its allowance",
        "Credit Meter: wallet acme has used 90% of its allowance",
    ]
    assert [vars(r)["alert"] for r in logged] == lines


# -- details ---------------------------------------------------------------------------------


def test_subjects_are_printable_ascii_under_100_characters() -> None:
    long_id = "ünïcode-" + "x" * 120
    old = spent(long_id, 360, mb={"0123456789ab": {"n": "m" * 64, "c": Decimal(1), "u": 0}})
    new = spent(long_id, 460, mb={"0123456789ab": {"n": "m" * 64, "c": Decimal(1), "u": 1}})
    new.update(lim=Decimal(400), lat=Decimal(10))
    subjects = [notify.subject(a) for a in crossings(old, new, "1", occurred_at=0)]
    assert len(subjects) == 5
    for text in subjects:
        assert len(text) < 100 and text.isascii() and text.isprintable(), text
        assert text.startswith("Credit Meter: wallet ?n?code-xxx")


def test_nothing_is_done_at_import() -> None:
    code = (
        "import sys\n"
        "import credit_meter.core.alerts\n"
        "assert not {'boto3', 'botocore', 'aws_lambda_powertools'} & set(sys.modules), 'alerts'\n"
        "from credit_meter.controls import notify\n"
        "assert 'aws_lambda_powertools.utilities.idempotency' not in sys.modules\n"
        "assert not notify._clients and not notify._onces\n"
    )
    env = {"PYTHONPATH": "layers/credit_meter", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def test_a_failing_auto_top_up_does_not_hold_up_the_alerts(
    run: Run, subscribers: Subscribers, alerts_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [*_sample()["Records"], record(spent("w2", 370), spent("w2", 380))]
    real_top_up = alerts_app.top_up

    def stripe_down(old: Json | None, wallet: Json) -> None:
        if wallet["wallet_id"] == "acme":
            raise ConnectionError("Stripe unreachable")
        real_top_up(old, wallet)

    monkeypatch.setattr(alerts_app, "top_up", stripe_down)
    assert run(records) == [records[0]["dynamodb"]["SequenceNumber"]]  # retried for the top-up
    assert len(subscribers.events()) == len(subscribers.notifications()) == 3  # alerts went out
    monkeypatch.undo()
    assert run(records) == []
    assert (subscribers.events(), subscribers.notifications()) == ([], [])
