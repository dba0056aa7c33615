"""Auto top-up (issue "Top-ups with Stripe"): ``PUT/GET /v1/wallets/{id}/auto-topup`` and the
auto top-up, which watches wallet writes on the table's stream and buys the pack with the
saved card once per crossing below the threshold.

The table's real stream (moto) is fed to the real handler of the stream's second reader
(``functions/alerts/app.py``, which runs the auto top-up next to the alerts) as Lambda's
DynamoDB event source would (``stream_records`` gives the records not seen yet); the
handler's Stripe calls reach a fake Stripe API on 127.0.0.1 (``fake_stripe``) through the
real stripe-python client, and the payments are credited by signed events posted to the real
webhook handler. Each test has a table and a service clock of its own (``credit_meter.core.clock``);
wallet ``w1`` is on the free plan (50 credits).
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.core import clock
from credit_meter.storage import items, wallet_record
from credit_meter.storage.store import Store
from devtools import stripe_events as se
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, ok

Api = Callable[..., tuple[int, dict[str, str], Any]]
Json = dict[str, Any]

pytestmark = pytest.mark.usefixtures("fresh_table")

W = "/v1/wallets/w1"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
URLS = {"success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}
CUSTOMER = "cus_unitFakeAutoBuyer"
BACKOFF = 3600


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(T0) as fake:
        yield fake


# -- helpers --------------------------------------------------------------------------------


def create(api: Api, wallet_id: str = "w1", plan: str = "free") -> None:
    ok(api("PUT", f"/v1/wallets/{wallet_id}", {"plan": plan}), 201)


def available(api: Api, wallet_id: str = "w1") -> str:
    return str(ok(api("GET", f"/v1/wallets/{wallet_id}"), 200)["available"])


def charge(api: Api, credits: str, wallet_id: str = "w1") -> None:
    body = {"feature": "chat", "credits": credits}
    ok(api("POST", f"/v1/wallets/{wallet_id}/charges", body), 201)


def enable(api: Api, threshold: str = "100", pack: str = "pack_500", **card: str) -> Json:
    body = {"enabled": True, "threshold": threshold, "pack": pack, **card}
    return dict(ok(api("PUT", f"{W}/auto-topup", body), 200))


def settings(api: Api) -> Json:
    return dict(ok(api("GET", f"{W}/auto-topup"), 200))


def wallet_item(wallet_id: str = "w1") -> Json:
    item = Store().get(wallet_record.key(wallet_id))
    assert item is not None
    return item


def handled(webhook: Callable[..., Any], evt: Json) -> None:
    status, _, body = webhook(evt)
    assert status == 200 and body["handled"] is True, body


def attempts(fake: Any) -> list[Any]:
    """The PaymentIntents the function asked the fake Stripe for, in order."""
    return [r for r in fake.requests if r.method == "POST" and r.path == "/v1/payment_intents"]


Run = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def run(alerts_app: Any, stream_records: Callable[[], list[Json]]) -> Run:
    """``run(records=None, failures=0)``: feed the stream's new records (or ``records``) to
    the alerts function's handler (which runs the auto top-up), as one batch; exactly
    ``failures`` of them may be reported as batch item failures. Returns the records it was
    given."""

    def call(records: list[Json] | None = None, *, failures: int = 0) -> list[Json]:
        batch = stream_records() if records is None else records
        processor = alerts_app.processor
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "No application metrics to publish")
            result = alerts_app.handler({"Records": batch}, FakeContext())
        assert len(result["batchItemFailures"]) == failures, (result, processor.exceptions)
        return batch

    return call


def buy_and_save(
    api: Api,
    webhook: Callable[..., Any],
    fake: Any,
    payment_method: str = "pm_card_visa",
    save: bool = True,
) -> Json:
    """A paid checkout of pack_500 (saving the card when ``save``), as Stripe tells it."""
    body = {"pack": "pack_500", "save_payment_method": save, **URLS}
    out = ok(api("POST", f"{W}/checkout", body), 201)
    session = fake.complete_checkout(out["checkout_session_id"], payment_method=payment_method)
    pi = fake.payment_intent(session["payment_intent"])
    handled(webhook, se.event("checkout.session.completed", session))
    handled(webhook, se.event("payment_intent.succeeded", pi))
    return dict(pi)


def credit_last_attempt(api: Api, webhook: Callable[..., Any], fake: Any) -> Json:
    """Deliver ``payment_intent.succeeded`` for the PaymentIntent of the wallet's last
    attempt, as the fake Stripe holds it."""
    last = settings(api)["last_attempt"]
    assert last is not None and last["status"] == "succeeded", last
    pi = fake.payment_intent(last["payment_id"])
    assert pi["status"] == "succeeded" and pi["metadata"]["crossing"] == str(last["crossing"])
    handled(webhook, se.event("payment_intent.succeeded", pi))
    return dict(pi)


# -- PUT / GET ------------------------------------------------------------------------------


def test_auto_top_up_is_off_until_set(api: Api, now: FakeClock) -> None:
    create(api)
    assert settings(api) == {
        "wallet_id": "w1",
        "enabled": False,
        "threshold": None,
        "pack": None,
        "has_payment_method": False,
        "state": None,
        "retry_after": None,
        "last_attempt": None,
    }


def test_enable_with_the_card_of_a_paid_checkout(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, table_items: Any
) -> None:
    create(api)
    pi = buy_and_save(api, webhook, stripe_requests)
    assert settings(api)["has_payment_method"] is True
    saved = Store().get(items.auto_topup_key("w1"))
    assert saved is not None
    assert (saved["customer_id"], saved["payment_method_id"]) == (
        pi["customer"],
        pi["payment_method"],
    )

    body = enable(api, threshold="100", pack="pack_500")
    assert body == {
        "wallet_id": "w1",
        "enabled": True,
        "threshold": "100",
        "pack": "pack_500",
        "has_payment_method": True,
        "state": "armed",
        "retry_after": None,
        "last_attempt": None,
    }
    assert settings(api) == body
    item = wallet_item()
    assert (item["atx"], item["ats"], item["atn"]) == (100, "armed", 0)


def test_enable_with_a_card_given_explicitly(api: Api, now: FakeClock) -> None:
    create(api)
    body = enable(
        api,
        threshold="25.5",
        pack="pack_2500",
        customer_id=CUSTOMER,
        payment_method_id="pm_card_mastercard",
    )
    assert (body["enabled"], body["threshold"], body["pack"]) == (True, "25.5", "pack_2500")
    assert (body["has_payment_method"], body["state"]) == (True, "armed")
    saved = Store().get(items.auto_topup_key("w1"))
    assert saved is not None
    assert (saved["customer_id"], saved["payment_method_id"]) == (CUSTOMER, "pm_card_mastercard")


def test_a_threshold_of_zero_is_allowed(api: Api, now: FakeClock) -> None:
    create(api)
    body = enable(api, threshold="0", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    assert (body["threshold"], body["state"]) == ("0", "armed")


def test_disable_keeps_the_card_and_hides_the_wallet_from_the_function(
    api: Api, now: FakeClock
) -> None:
    create(api)
    enable(api, customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    body = ok(api("PUT", f"{W}/auto-topup", {"enabled": False}), 200)
    assert (body["enabled"], body["state"], body["retry_after"]) == (False, None, None)
    assert body["has_payment_method"] is True
    assert settings(api) == body
    item = wallet_item()
    # No threshold: the function's stream filter no longer matches the wallet. The state and
    # crossing count stay, so turning it on again cannot look like a new crossing.
    assert "atx" not in item and (item["ats"], item["atn"]) == ("armed", 0)
    # enabling again needs no card
    assert enable(api, threshold="10")["state"] == "armed"


def test_auto_top_up_of_an_unknown_wallet_is_404(api: Api, now: FakeClock) -> None:
    status, _, body = api("GET", "/v1/wallets/nobody/auto-topup")
    assert (status, body["type"]) == (404, "/problems/wallet-not-found")


def test_a_checkout_without_save_payment_method_saves_no_card(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock
) -> None:
    create(api)
    buy_and_save(api, webhook, stripe_requests, save=False)
    assert settings(api)["has_payment_method"] is False
    status, _, body = api(
        "PUT", f"{W}/auto-topup", {"enabled": True, "threshold": "10", "pack": "pack_500"}
    )
    assert status == 422, body


def test_the_last_saved_card_is_the_one_charged(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    create(api)
    buy_and_save(api, webhook, stripe_requests, payment_method="pm_card_visa")
    later = buy_and_save(api, webhook, stripe_requests, payment_method="pm_card_mastercard")
    enable(api, threshold="100")
    run()
    charge(api, "1000")  # 1050 → 50
    run()
    (attempt,) = attempts(stripe_requests)
    assert attempt.params["payment_method"] == later["payment_method"] == "pm_card_mastercard"


# -- the function on the stream -------------------------------------------------------------


def test_a_crossing_fires_one_payment_and_a_credit_re_arms_it(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    pi = buy_and_save(api, webhook, fake)  # 550
    enable(api, threshold="100", pack="pack_500")
    run()  # everything so far: nothing below the threshold
    assert attempts(fake) == []

    charge(api, "460")  # 550 → 90: below 100
    crossing = run()
    (first,) = attempts(fake)
    assert first.idempotency_key == "local:auto-topup:w1:1"
    assert first.status == 200
    params = first.params
    assert (params["amount"], params["currency"]) == ("500", "usd")
    assert (params["customer"], params["payment_method"]) == (pi["customer"], "pm_card_visa")
    assert (params["off_session"], params["confirm"]) == ("true", "true")
    assert params["metadata"] == {
        "deployment": "local",
        "wallet_id": "w1",
        "credits": "500",
        "offer": "pack_500",
        "kind": "auto_topup",
        "crossing": "1",
    }
    got = settings(api)
    assert got["state"] == "fired"
    assert got["last_attempt"]["crossing"] == 1
    assert got["last_attempt"]["status"] == "succeeded"

    # further debits below the threshold buy nothing more
    charge(api, "10")
    charge(api, "30")
    run()
    # the same records delivered again (Lambda retries a batch) buy nothing more either
    run(crossing)
    assert len(attempts(fake)) == 1
    assert available(api) == "50"

    # Stripe's webhook credits the pack; once available is back above, it re-arms
    credit_last_attempt(api, webhook, fake)
    assert available(api) == "550"
    run()
    assert settings(api)["state"] == "armed"
    lines = ok(api("GET", f"{W}/payments"), 200)["items"]
    # (Stripe dates objects to the second: the checkout's and this one's may share it.)
    (newest,) = [line for line in lines if line["kind"] == "auto_topup"]
    assert (newest["status"], newest["credited"]) == ("paid", "500")

    # the next crossing buys again, under the next number
    charge(api, "500")  # 550 → 50
    run()
    assert [a.idempotency_key for a in attempts(fake)] == [
        "local:auto-topup:w1:1",
        "local:auto-topup:w1:2",
    ]


def test_a_credit_that_leaves_the_wallet_below_keeps_it_fired(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    buy_and_save(api, webhook, fake)  # 550
    enable(api, threshold="1000", pack="pack_500")
    run()  # 550 < 1000 at once: the enabling write is a crossing
    assert [a.idempotency_key for a in attempts(fake)] == ["local:auto-topup:w1:1"]
    credit_last_attempt(api, webhook, fake)  # 1050
    run()
    assert settings(api)["state"] == "armed"
    charge(api, "100")  # 950
    run()
    assert len(attempts(fake)) == 2
    credit_last_attempt(api, webhook, fake)
    run()
    assert available(api) == "1450"
    assert len(attempts(fake)) == 2


def test_a_declined_card_backs_off_for_an_hour(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    enable(
        api,
        threshold="40",
        pack="pack_500",
        customer_id=CUSTOMER,
        payment_method_id="pm_card_chargeDeclined",
    )
    run()
    charge(api, "20")  # 50 → 30
    run()
    (first,) = attempts(fake)
    assert (first.idempotency_key, first.status) == ("local:auto-topup:w1:1", 402)
    got = settings(api)
    assert got["state"] == "declined"
    assert got["retry_after"] == clock.iso(T0.timestamp() + BACKOFF)
    assert got["last_attempt"]["status"] == "declined"
    assert got["last_attempt"]["crossing"] == 1
    assert available(api) == "30"

    # no attempt during the pause, whatever the wallet does
    for seconds in (1, 600, BACKOFF - 602):  # up to 3599 s after the decline
        now.advance(seconds)
        charge(api, "1")
        run()
    assert len(attempts(fake)) == 1

    now.advance(1)  # 3600 s after the decline: one new attempt
    charge(api, "1")
    run()
    charge(api, "1")
    run()
    assert [a.idempotency_key for a in attempts(fake)] == [
        "local:auto-topup:w1:1",
        "local:auto-topup:w1:2",
    ]
    assert settings(api)["retry_after"] == clock.iso(now.now.timestamp() + BACKOFF)


def test_a_failed_payment_webhook_for_an_auto_top_up_also_backs_off(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    run()
    charge(api, "20")
    run()
    (first,) = attempts(fake)
    assert settings(api)["state"] == "fired"
    # the payment fails later (an asynchronous method), as Stripe's webhook says
    intent = se.payment_intent(
        amount=500,
        status="requires_payment_method",
        metadata=first.params["metadata"],
        customer=CUSTOMER,
        payment_method=None,
        last_payment_error=se.card_error("pm_card_chargeDeclinedInsufficientFunds"),
    )
    handled(webhook, se.event("payment_intent.payment_failed", intent))
    got = settings(api)
    assert got["state"] == "declined"
    assert got["retry_after"] == clock.iso(T0.timestamp() + BACKOFF)
    assert available(api) == "30"  # nothing credited

    charge(api, "1")
    run()
    assert len(attempts(fake)) == 1
    now.advance(BACKOFF)
    charge(api, "1")
    run()
    assert [a.idempotency_key for a in attempts(fake)] == [
        "local:auto-topup:w1:1",
        "local:auto-topup:w1:2",
    ]


def test_disabling_stops_it(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    run()
    ok(api("PUT", f"{W}/auto-topup", {"enabled": False}), 200)
    run()
    charge(api, "20")  # 50 → 30: below what the threshold was
    charge(api, "20")
    run()
    assert attempts(fake) == []
    assert wallet_item()["atn"] == 0 and "atx" not in wallet_item()


def test_disabling_after_a_crossing_makes_no_further_attempt(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_chargeDeclined")
    run()
    charge(api, "20")
    run()
    assert len(attempts(fake)) == 1  # declined
    ok(api("PUT", f"{W}/auto-topup", {"enabled": False}), 200)
    now.advance(2 * BACKOFF)
    charge(api, "1")
    run()
    assert len(attempts(fake)) == 1


def test_a_wallet_without_auto_top_up_is_never_charged(
    api: Api, stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    create(api)
    charge(api, "49")
    run()
    assert attempts(stripe_requests) == []


def test_stripe_unreachable_fails_the_record_and_its_retry_buys_once(
    api: Api,
    stripe_requests: Any,
    now: FakeClock,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from credit_meter.payments import stripe_gateway

    fake = stripe_requests
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    run()
    charge(api, "20")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{closed}")
    stripe_gateway.reset_client()
    try:
        batch = run(failures=1)  # the crossing's record is reported as failed
    finally:
        monkeypatch.undo()
        stripe_gateway.reset_client()
    assert attempts(fake) == []
    assert settings(api)["state"] == "fired"  # claimed, not yet bought

    run(batch)  # Lambda retries the batch from the failed record
    run()  # and the claim's own write follows on the stream
    run(batch)
    (only,) = attempts(fake)
    assert only.idempotency_key == "local:auto-topup:w1:1"
    assert settings(api)["last_attempt"]["status"] == "succeeded"


def test_records_that_are_not_wallet_writes_are_ignored(
    api: Api,
    stripe_requests: Any,
    now: FakeClock,
    run: Run,
    stream_records: Callable[[], list[Json]],
) -> None:
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    run()
    charge(api, "20")  # a crossing: the wallet write and the charge's record
    records = stream_records()
    wallet_writes = [
        r for r in records if r["dynamodb"]["Keys"]["sk"]["S"] == wallet_record.WALLET_SK
    ]
    others = [r for r in records if r not in wallet_writes]
    assert wallet_writes and others
    run(others)
    assert attempts(stripe_requests) == []
    run(wallet_writes)
    assert len(attempts(stripe_requests)) == 1


def test_an_auto_top_up_payment_is_listed_and_credited_once(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    run()
    charge(api, "20")
    run()
    assert [a.idempotency_key for a in attempts(fake)] == ["local:auto-topup:w1:1"]
    for _ in range(3):
        pi = credit_last_attempt(api, webhook, fake)
    assert available(api) == "530"
    (line,) = ok(api("GET", f"{W}/payments"), 200)["items"]
    assert (line["payment_id"], line["kind"], line["offer"]) == (pi["id"], "auto_topup", "pack_500")
    assert (line["credits"], line["credited"], line["status"]) == ("500", "500", "paid")
    assert Decimal(available(api)) == 30 + 500


def test_saving_the_settings_again_while_a_top_up_is_in_flight_buys_nothing_more(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any, now: FakeClock, run: Run
) -> None:
    fake = stripe_requests
    create(api)
    enable(api, threshold="40", customer_id=CUSTOMER, payment_method_id="pm_card_visa")
    run()
    charge(api, "20")  # 50 → 30
    run()
    assert len(attempts(fake)) == 1
    assert settings(api)["state"] == "fired"
    # the settings page saves the same settings; Stripe's webhook has not arrived yet
    enable(api, threshold="40")
    run()
    assert len(attempts(fake)) == 1
