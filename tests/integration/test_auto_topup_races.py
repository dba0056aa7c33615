"""Auto top-up on DynamoDB Local: many concurrent debits cross the threshold once, and the
auto top-up function, fed the table's real stream, buys exactly one pack per crossing."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from credit_meter import stripe_gateway
from credit_meter.common import Request
from credit_meter.errors import InsufficientCredits
from credit_meter.payments import Payments
from credit_meter.service import Cost
from devtools.apigw import FakeContext
from devtools.fake_stripe import FakeStripe
from devtools.stream_pump import StreamPump
from tests.integration.conftest import _as_lambda_sends
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
def auto_topup_stream(meter_table: str, ddb_client: Any, ddb_local_endpoint: str) -> StreamPump:
    """The table's stream fed to the real auto top-up handler (as its event source would)."""
    handler = importlib.import_module("auto_topup.app").handler
    arn = ddb_client.describe_table(TableName=meter_table)["Table"]["LatestStreamArn"]

    def watch(event: dict[str, Any], context: Any) -> Any:
        event = _as_lambda_sends(copy.deepcopy(event))
        # The template's filter: wallet writes of wallets with auto top-up on.
        event["Records"] = [
            r
            for r in event["Records"]
            if r["dynamodb"]["Keys"]["sk"]["S"] == "W"
            and "atx" in r["dynamodb"].get("NewImage", {})
        ]
        return handler(event, context) if event["Records"] else {"batchItemFailures": []}

    return StreamPump(ddb_local_endpoint, arn, watch, context_factory=FakeContext)


def _intents(fake: FakeStripe) -> list[str | None]:
    return [r.idempotency_key for r in fake.requests if r.path == "/v1/payment_intents"]


def test_concurrent_debits_across_the_threshold_buy_one_pack(
    meter_table: str,
    stripe_api: FakeStripe,
    auto_topup_stream: StreamPump,
    ddb_local_endpoint: str,
) -> None:
    service = Payments()
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

    # The whole stream delivered again from its start (a replayed shard): nothing more.
    again = StreamPump(
        ddb_local_endpoint,
        auto_topup_stream.stream_arn,
        auto_topup_stream.handler,
        context_factory=FakeContext,
    )
    assert again.drain() > 32
    assert _intents(stripe_api) == ["local:auto-topup:w1:1"]


def test_a_second_crossing_after_the_credits_arrive_buys_once_more(
    meter_table: str, stripe_api: FakeStripe, auto_topup_stream: StreamPump
) -> None:
    from credit_meter.payments import Observation

    service = Payments()
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
