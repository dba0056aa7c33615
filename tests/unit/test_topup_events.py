"""The top-up functions invoked with the sample events of ``events/`` (the shapes
``sam local invoke`` would send): the API routes for a checkout, the payments list and auto
top-up, and the alerts function (which runs the auto top-up) fed a wallet write from the
table's stream. The API events carry the JWT authorizer's claims of callers in the
organisation ``acme-corp``."""

from __future__ import annotations

import importlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.apigw import FakeContext, http_event
from tests.principals import token

EVENTS = Path(__file__).parents[2] / "events"
pytestmark = pytest.mark.usefixtures("fresh_table")


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _call(app: Any, name: str) -> tuple[int, Any]:
    response = app.handler(_event(name), FakeContext())
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def test_checkout_payments_and_auto_topup_events(
    metering_app: Any, webhook: Any, stripe_requests: Any
) -> None:
    from devtools import stripe_events as se

    status, _ = _call(metering_app, "api-put-wallet.json")
    assert status == 201  # wallet "acme"
    status, body = _call(metering_app, "api-checkout.json")
    assert status == 201, body
    assert (body["offer"], body["credits"], body["amount"], body["currency"]) == (
        "pack_500",
        "500",
        "5",
        "usd",
    )
    (sent,) = [r for r in stripe_requests.requests if r.path == "/v1/checkout/sessions"]
    assert sent.idempotency_key == "local:checkout:acme:topup-7"  # the event's Idempotency-Key
    assert sent.params["payment_intent_data"]["setup_future_usage"] == "off_session"

    # Not paid yet: an empty list; auto top-up has no saved card to use.
    assert _call(metering_app, "api-payments.json") == (200, {"items": [], "next_cursor": None})
    status, problem = _call(metering_app, "api-put-auto-topup.json")
    assert (status, problem["errors"][0]["field"]) == (422, "payment_method_id")

    # Paid: Stripe's events credit the pack and save the card.
    session = stripe_requests.complete_checkout(body["checkout_session_id"])
    intent = stripe_requests.payment_intent(session["payment_intent"])
    for kind, obj in (
        ("checkout.session.completed", session),
        ("payment_intent.succeeded", intent),
    ):
        assert webhook(se.event(kind, obj))[0] == 200
    status, page = _call(metering_app, "api-payments.json")
    assert [(p["status"], p["credited"]) for p in page["items"]] == [("paid", "500")]
    status, settings = _call(metering_app, "api-put-auto-topup.json")
    assert status == 200, settings
    assert (settings["state"], settings["threshold"], settings["has_payment_method"]) == (
        "armed",
        "100",
        True,
    )


def test_auto_topup_function_with_the_stream_event(
    metering_app: Any, stripe_requests: Any, table_items: Any
) -> None:
    from credit_meter.payments.auto_topup import AutoTopups

    assert _call(metering_app, "api-put-wallet.json")[0] == 201
    card = {"customer_id": "cus_events", "payment_method_id": "pm_card_visa"}
    AutoTopups().set_auto_topup("acme", True, Decimal(100), "pack_2500", **card)
    # Spend 420 of 500: the wallet is really at 80, as the sample record shows it.
    charge = {"feature": "chat", "credits": "420"}
    backend = token(org="acme-corp", scopes=["credits:meter"])  # as the sample events' org
    response = metering_app.handler(
        http_event("POST", "/v1/wallets/acme/charges", charge, claims=backend), FakeContext()
    )
    assert response["statusCode"] == 201
    auto_topup = importlib.import_module("alerts.app")
    event = _event("auto-topup-stream.json")  # acme's available falls from 120 to 80 (< 100)
    assert auto_topup.handler(event, FakeContext()) == {"batchItemFailures": []}
    intents = [r for r in stripe_requests.requests if r.path == "/v1/payment_intents"]
    assert [r.idempotency_key for r in intents] == ["local:auto-topup:acme:1"]
    assert intents[0].params["metadata"]["kind"] == "auto_topup"
    assert intents[0].params["amount"] == "2000"  # pack_2500: $20
    # The same record again (a retried batch): no second payment.
    assert auto_topup.handler(event, FakeContext()) == {"batchItemFailures": []}
    assert len([r for r in stripe_requests.requests if r.path == "/v1/payment_intents"]) == 1
