"""Auto top-up on DynamoDB Local: many concurrent debits cross the threshold once, and the
alerts function (which runs the auto top-up), fed the table's real stream, buys exactly one
pack per crossing."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from credit_meter.billing.plans import Plans
from credit_meter.controls import notify
from credit_meter.core.errors import InsufficientCredits
from credit_meter.core.idempotency import Request
from credit_meter.metering.service import Cost
from credit_meter.payments import stripe_gateway
from devtools.apigw import FakeContext
from devtools.fake_stripe import FakeStripe
from devtools.stream_pump import StreamPump
from tests.integration.conftest import _as_lambda_sends
from tests.services import Service
from tests.storms import kinds, storm

CARD = {"customer_id": "cus_races", "payment_method_id": "pm_card_visa"}


@pytest.fixture
def stripe_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.base_url)
        monkeypatch.setenv("STRIPE_API_KEY", "sk_test_races_fake")
        stripe_gateway.reset_client()
        yield fake
    stripe_gateway.reset_client()


@pytest.fixture
def alerts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the alerts go: no bus, no topic, the local sink's file."""
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    monkeypatch.delenv("ALERTS_TOPIC_ARN", raising=False)
    path = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("ALERTS_FILE", str(path))
    notify.reset_clients()
    return path


def _alerts(path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [(x["type"], (x.get("threshold") or {}).get("value", "")) for x in lines]


@pytest.fixture
def auto_topup_stream(
    meter_table: str, ddb_client: Any, ddb_local_endpoint: str, alerts_file: Path
) -> StreamPump:
    """The table's stream fed to the real alerts handler, which runs the auto top-up (as its
    event source would)."""
    handler = importlib.import_module("alerts.app").handler
    arn = ddb_client.describe_table(TableName=meter_table)["Table"]["LatestStreamArn"]

    def watch(event: dict[str, Any], context: Any) -> Any:
        event = _as_lambda_sends(copy.deepcopy(event))
        # The template's filter: wallet writes.
        event["Records"] = [r for r in event["Records"] if r["dynamodb"]["Keys"]["sk"]["S"] == "W"]
        return handler(event, context) if event["Records"] else {"batchItemFailures": []}

    return StreamPump(ddb_local_endpoint, arn, watch, context_factory=FakeContext)


def _intents(fake: FakeStripe) -> list[str | None]:
    return [r.idempotency_key for r in fake.requests if r.path == "/v1/payment_intents"]


def test_concurrent_debits_across_the_threshold_buy_one_pack(
    meter_table: str,
    stripe_api: FakeStripe,
    auto_topup_stream: StreamPump,
    ddb_local_endpoint: str,
    alerts_file: Path,
) -> None:
    service = Service()
    service.put_wallet("w1", "starter")  # 500 credits
    service.set_auto_topup("w1", True, Decimal(200), "pack_500", **CARD)

    def spend(i: int) -> Any:
        return service.charge("w1", Cost(Decimal(15)), Request(f"c{i}"), "chat", None)

    results = storm(32, spend)  # 480 credits: available falls from 500 to 20, once
    assert kinds(results) == {"Charge": 32}
    auto_topup_stream.drain()
    assert _intents(stripe_api) == ["local:auto-topup:w1:1"]
    state = service.auto_topup("w1")
    assert (state.state, state.last_attempt and state.last_attempt["crossing"]) == ("fired", 1)
    # 480 of 500 used: 75 % and 90 % crossed, each by exactly one of the concurrent charges.
    crossed = [("credits.threshold_crossed", "75"), ("credits.threshold_crossed", "90")]
    assert _alerts(alerts_file) == crossed

    # The whole stream delivered again from its start (a replayed shard): nothing more.
    again = StreamPump(
        ddb_local_endpoint,
        auto_topup_stream.stream_arn,
        auto_topup_stream.handler,
        context_factory=FakeContext,
    )
    assert again.drain() > 32
    assert _intents(stripe_api) == ["local:auto-topup:w1:1"]
    assert _alerts(alerts_file) == crossed  # the claims are in the table: nothing twice


def test_a_second_crossing_after_the_credits_arrive_buys_once_more(
    meter_table: str, stripe_api: FakeStripe, auto_topup_stream: StreamPump
) -> None:
    from credit_meter.payments.facts import Observation

    service = Service()
    service.put_wallet("w1", "starter")
    service.set_auto_topup("w1", True, Decimal(200), "pack_500", **CARD)
    storm(16, lambda i: service.charge("w1", Cost(Decimal(25)), Request(f"a{i}"), "chat", None))
    auto_topup_stream.drain()
    assert _intents(stripe_api) == ["local:auto-topup:w1:1"]
    attempt = service.auto_topup("w1").last_attempt
    assert attempt is not None and attempt["status"] == "succeeded"
    # Stripe's webhook credits the pack: available 100 + 500 = 600 >= 200, so it re-arms.
    service.record(
        Observation(
            event_id="evt_1",
            event_type="payment_intent.succeeded",
            payment_id=attempt["payment_id"],
            at=1,
            wallet_id="w1",
            credits=Decimal(500),
            amount=500,
            currency="usd",
            kind="auto_topup",
            crossing=1,
            paid=True,
        )
    )
    auto_topup_stream.drain()
    assert service.auto_topup("w1").state == "armed"

    # Concurrent debits that overdraw what is left: some are refused, one crossing again.
    results = storm(
        24, lambda i: service.charge("w1", Cost(Decimal(25)), Request(f"b{i}"), "chat", None)
    )
    assert set(kinds(results)) <= {"Charge", "InsufficientCredits"}
    assert all(isinstance(r, InsufficientCredits) or r.charged == 25 for r in results)
    auto_topup_stream.drain()
    assert _intents(stripe_api) == ["local:auto-topup:w1:1", "local:auto-topup:w1:2"]


def _scoped(path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    out = []
    for x in lines:
        what = (
            (x.get("threshold") or {}).get("type", "")
            + ":"
            + str((x.get("threshold") or {}).get("value", ""))
        )
        out.append((x["type"], x.get("member_id") or what))
    return sorted(out)


def test_a_storm_to_the_limit_fires_every_alert_once(
    meter_table: str, auto_topup_stream: StreamPump, alerts_file: Path
) -> None:
    from credit_meter.controls.controls import Controls
    from credit_meter.core.errors import MemberBudgetReached, SpendingLimitReached
    from credit_meter.metering.service import Metering

    Plans().put_wallet("w1", "starter")  # 500 credits
    service = Controls()
    service.set_limits("w1", Decimal(300), Decimal(450))
    service.set_member_budget("w1", "alice", Decimal(90))

    def spend(i: int) -> Any:
        member = "alice" if i % 2 else "bob"
        return Metering().charge("w1", Cost(Decimal(15)), Request(f"s{i}"), "chat", member)

    results = storm(60, spend)
    # The limit takes exactly 30 charges of 15 (450), alice's budget exactly 6 of them.
    charged = [r for i, r in enumerate(results) if not isinstance(r, Exception)]
    assert len(charged) == 30
    alice = [r for i, r in enumerate(results) if i % 2 and not isinstance(r, Exception)]
    assert len(alice) == 6
    refusals = {type(r) for r in results if isinstance(r, Exception)}
    assert refusals <= {SpendingLimitReached, MemberBudgetReached}
    limits = service.limits("w1")
    assert (limits.used, limits.remaining, limits.state) == (Decimal(450), Decimal(0), "capped")

    auto_topup_stream.drain()
    # Each crossing by exactly one of the concurrent charges: 75 % (375) and 90 % (450) of the
    # allowance, the spending alert (300), the wallet's limit and alice's budget. Not 100 %.
    assert _scoped(alerts_file) == sorted(
        [
            ("credits.threshold_crossed", "consumed_percent:75"),
            ("credits.threshold_crossed", "consumed_percent:90"),
            ("credits.threshold_crossed", "spend:300"),
            ("limit.reached", ":"),
            ("limit.reached", "alice"),
        ]
    )
