"""Signed Stripe events outside Stripe's own limits: answered 200, recorded as rejected (a log
line and the ``StripeEventsRejected`` metric), nothing written, and never a 5xx.

Each case is a real event shape from :mod:`devtools.stripe_events`, signed as Stripe signs it,
with one field pushed past a limit: an amount of ``1e5000`` (an integer past Python's 4,300
digit limit), ``1e999999`` (a million-digit integer), a 3,000-character ``metadata.wallet_id``,
a 2,100-character PaymentIntent id, and so on. ``MARK`` stands in the event for the raw JSON
token a case puts there, so numbers no JSON encoder writes can be sent. The limits themselves
(a 255-character id, a 500-character metadata value, 99,999,999 minor units) are accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from devtools import stripe_events as se
from tests.logs import captured_logs

Json = dict[str, Any]
Step = Callable[[str], Json]
MARK = 777_000_777  # where a case's raw token goes

PI = "pi_" + "B" * 21


def _checkout(amount: object = 500, **meta: str) -> Json:
    metadata = {**se.wallet_metadata("w1", "500", "pack_500"), **meta}
    return se.event(
        "checkout.session.completed",
        se.checkout_session(
            payment_intent=PI, wallet_id="w1", amount_total=amount, metadata=metadata
        ),  # type: ignore[arg-type]
    )


def _intent(pi: str = PI, amount: object = 500, **meta: str) -> Json:
    metadata = {**se.wallet_metadata("w1", "500", "pack_500"), **meta}
    return se.event(
        "payment_intent.succeeded",
        se.payment_intent(id=pi, amount=amount, metadata=metadata),  # type: ignore[arg-type]
    )


def _refund(refunded: object) -> Json:
    return se.event(
        "charge.refunded",
        se.charge(payment_intent=PI, amount_refunded=refunded),  # type: ignore[arg-type]
    )


def _dispute(amount: object) -> Json:
    return se.event(
        "charge.dispute.created",
        se.dispute(payment_intent=PI, amount=amount),  # type: ignore[arg-type]
    )


def _created(created: object) -> Json:
    evt = _checkout()
    evt["created"] = created
    return evt


def _raw(evt: Json, token: str) -> bytes:
    """The event as Stripe encodes it, with the raw JSON ``token`` wherever ``MARK`` was."""
    payload = se.encode(evt)
    assert payload.count(str(MARK).encode()) >= 1
    return payload.replace(str(MARK).encode(), token.encode())


REJECTED = [
    pytest.param(_raw(_checkout(MARK), "1e5000"), id="amount-1e5000"),
    pytest.param(_raw(_checkout(MARK), "1e999999"), id="amount-1e999999"),
    pytest.param(_raw(_checkout(MARK), "1E+1000000"), id="amount-past-emax"),
    pytest.param(_raw(_checkout(MARK), "9" * 5000), id="amount-5000-digits"),
    pytest.param(_raw(_checkout(MARK), "1" + "0" * 25), id="amount-26-digits"),
    pytest.param(se.encode(_checkout(100_000_000)), id="amount-above-stripe-max"),
    pytest.param(se.encode(_checkout(-1)), id="amount-negative"),
    pytest.param(_raw(_intent(amount=MARK), "1e999999"), id="intent-amount-1e999999"),
    pytest.param(_raw(_refund(MARK), "1e5000"), id="refunded-1e5000"),
    pytest.param(se.encode(_refund(10**12)), id="refunded-above-stripe-max"),
    pytest.param(_raw(_dispute(MARK), "1e999999"), id="dispute-amount-1e999999"),
    pytest.param(_raw(_created(MARK), "1e999999"), id="created-1e999999"),
    pytest.param(se.encode(_created(10**15)), id="created-past-year-9999"),
    pytest.param(se.encode(_checkout(wallet_id="w" * 3000)), id="wallet-id-3000-chars"),
    pytest.param(se.encode(_checkout(wallet_id="w" * 501)), id="wallet-id-501-chars"),
    pytest.param(se.encode(_checkout(note="n" * 501)), id="other-metadata-501-chars"),
    pytest.param(se.encode(_intent(pi="pi_" + "x" * 2097)), id="intent-id-2100-chars"),
    pytest.param(se.encode(_intent(pi="pi_" + "x" * 253)), id="intent-id-256-chars"),
    pytest.param(se.encode(_intent(pi="pi_" + "é" * 200)), id="intent-id-not-ascii"),
    pytest.param(se.encode(_intent(crossing="1" * 10)), id="crossing-10-digits"),
]


@pytest.fixture
def world(fresh_table: str, api: Any, table_items: Any) -> list[dict[str, Any]]:
    status, _, out = api("PUT", "/v1/wallets/w1", {"plan": "free"})
    assert status == 201, out
    return table_items()


@pytest.mark.parametrize("payload", REJECTED)
def test_an_event_out_of_bounds_is_rejected_with_200_and_writes_nothing(
    webhook: Any,
    webhook_app: Any,
    table_items: Any,
    world: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    payload: bytes,
) -> None:
    capsys.readouterr()
    started = time.process_time()
    with captured_logs(webhook_app.logger) as logs:
        status, _, body = webhook(payload)
    assert time.process_time() - started < 1.0  # no million-digit arithmetic
    assert status == 200, body
    assert body["received"] is True and body["handled"] is False, body
    assert table_items() == world
    out = capsys.readouterr().out
    metrics = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert any(
        m.get("StripeEventsRejected") == [1.0] or m.get("StripeEventsRejected") == 1.0
        for m in metrics
    ), out
    (line,) = [json.loads(line) for line in logs.getvalue().splitlines() if "bounds" in line]
    assert line["level"] == "ERROR" and line["reason"], line


ACCEPTED = [
    pytest.param(_checkout(99_999_999), id="amount-at-stripe-max"),
    pytest.param(_intent(pi="pi_" + "x" * 252), id="intent-id-255-chars"),
    pytest.param(_checkout(wallet_id="w" * 500), id="wallet-id-500-chars-unknown-wallet"),
    pytest.param(_intent(crossing="²"), id="crossing-not-ascii-ignored"),
]


@pytest.mark.parametrize("evt", ACCEPTED)
def test_an_event_at_the_limits_is_recorded(
    webhook: Any, world: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], evt: Json
) -> None:
    status, _, body = webhook(evt)
    assert status == 200, body
    assert body["handled"] is True, body
    assert "StripeEventsRejected" not in capsys.readouterr().out
