"""A deployment without Stripe keys (``TOPUPS_ENABLED=false``; docs/payments.md, "Without
Stripe"): the routes that buy answer 501 ``topups-disabled``, the offers are empty, the reads
answer as usual, the webhook takes nothing and the alerts function buys nothing."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools import stripe_events as se
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, ok, problem
from tests.principals import token

Api = Callable[..., tuple[int, dict[str, str], Any]]

pytestmark = pytest.mark.usefixtures("fresh_table")

W = "/v1/wallets/w1"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
URLS = {"success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}
CARD = {"customer_id": "cus_unitFakeAutoBuyer", "payment_method_id": "pm_card_visa"}
AUTO = {"enabled": True, "threshold": "40", "pack": "pack_500", **CARD}


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(T0) as fake:
        yield fake


@pytest.fixture
def disabled(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    def switch_off() -> None:
        monkeypatch.setenv("TOPUPS_ENABLED", "false")

    return switch_off


def disabled_problem(response: tuple[int, dict[str, str], Any]) -> None:
    body = problem(response, 501, "topups-disabled")
    assert body["title"] == "Top-ups are disabled"
    assert "no Stripe keys" in body["detail"]


def test_the_buying_routes_answer_501(
    api: Api, now: FakeClock, disabled: Callable[[], None], stripe_requests: Any
) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    disabled()
    before = ok(api("GET", f"{W}/auto-topup"))
    disabled_problem(api("POST", f"{W}/checkout", {"pack": "pack_500", **URLS}))
    disabled_problem(api("GET", f"{W}/payments/pi_unitFake/invoice"))
    disabled_problem(api("PUT", f"{W}/auto-topup", AUTO))
    # even a body that would be refused: there is nothing to validate it for
    disabled_problem(api("POST", f"{W}/checkout", {"probe": 1}))
    assert stripe_requests.requests == []  # Stripe was never asked
    # the reads answer as usual; nothing is for sale
    assert ok(api("GET", f"{W}/auto-topup")) == before
    assert ok(api("GET", f"{W}/payments")) == {"items": [], "next_cursor": None}
    assert ok(api("GET", "/v1/topups/offers")) == {"packs": [], "amounts": None}


def test_access_and_tenancy_come_first(
    api: Api, now: FakeClock, disabled: Callable[[], None]
) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    disabled()
    viewer = token("viewer", org="org-test")
    problem(
        api("POST", f"{W}/checkout", {"pack": "pack_500", **URLS}, as_=viewer), 403, "forbidden"
    )
    problem(api("PUT", "/v1/wallets/w-none/auto-topup", AUTO), 404, "wallet-not-found")


def test_enabled_unless_false(api: Api, now: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    for value in ("true", "TRUE", ""):
        monkeypatch.setenv("TOPUPS_ENABLED", value)
        assert ok(api("GET", "/v1/topups/offers"))["packs"] != []
        ok(api("PUT", f"{W}/auto-topup", AUTO))


def test_the_webhook_answers_501_and_records_nothing(
    webhook: Callable[..., Any],
    disabled: Callable[[], None],
    table_items: Callable[..., list[dict[str, Any]]],
) -> None:
    disabled()
    pi = {"id": "pi_unitFake", "object": "payment_intent", "amount": 500, "currency": "usd"}
    before = table_items()
    disabled_problem(webhook(se.event("payment_intent.succeeded", pi)))
    disabled_problem(webhook(b"not even json", signature=""))
    assert table_items() == before


def test_the_alerts_function_does_not_top_up(
    api: Api,
    now: FakeClock,
    disabled: Callable[[], None],
    alerts_app: Any,
    stream_records: Callable[[], list[dict[str, Any]]],
    stripe_requests: Any,
) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    ok(api("PUT", f"{W}/auto-topup", AUTO))  # armed while top-ups were on
    disabled()
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "20"}), 201)  # 50 → 30 < 40
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No application metrics to publish")
        result = alerts_app.handler({"Records": stream_records()}, FakeContext())
    assert result["batchItemFailures"] == []
    assert [r for r in stripe_requests.requests if r.path == "/v1/payment_intents"] == []
    assert ok(api("GET", f"{W}/auto-topup"))["state"] == "armed"
