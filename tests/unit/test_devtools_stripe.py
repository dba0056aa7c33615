"""The Stripe stand-ins of devtools: signatures the real library accepts, a fake API the real
client can talk to, event fixtures the real library parses, and the webhook command."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from devtools import stripe_events as se
from devtools import stripe_webhook
from devtools.fake_stripe import FakeStripe, StripeError, parse_form

SECRET = "whsec_local_fake"
API_KEY = "sk_test_local_fake"
EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
FIXTURES = sorted(EVENTS_DIR.glob("stripe-*.json"))

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _line_items(unit_amount: int = 500, quantity: int = 1, currency: str = "usd") -> list[Any]:
    return [
        {
            "quantity": quantity,
            "price_data": {
                "currency": currency,
                "unit_amount": unit_amount,
                "product_data": {"name": "500 credits"},
            },
        }
    ]


def _session_params(**more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": "payment",
        "success_url": "http://127.0.0.1:3000/done?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:3000/cancel",
        "line_items": _line_items(),
        "client_reference_id": "w1",
        "metadata": se.wallet_metadata("w1", "500", "pack_500"),
        "payment_intent_data": {"metadata": se.wallet_metadata("w1", "500", "pack_500")},
    }
    params.update(more)
    return params


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as running:
        yield running


@pytest.fixture(scope="module")
def client(fake: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY, base_addresses={"api": fake.base_url}, max_network_retries=0
    )


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------


def _signed_event() -> tuple[bytes, dict[str, Any]]:
    evt = se.event("checkout.session.completed", se.checkout_session(session_id="cs_test_sig"))
    return se.encode(evt), evt


def test_the_stripe_library_accepts_the_signature() -> None:
    payload, evt = _signed_event()

    parsed = stripe.Webhook.construct_event(payload, se.sign(payload, SECRET), SECRET)

    assert parsed.id == evt["id"]
    assert parsed.type == "checkout.session.completed"
    assert parsed.data.object.id == "cs_test_sig"
    assert isinstance(parsed.data.object, stripe.checkout.Session)


def test_the_signature_is_stripes_scheme() -> None:
    payload, _ = _signed_event()
    ts = 1795255200

    header = se.sign(payload, SECRET, ts)

    assert header.startswith(f"t={ts},v1=")
    expected = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), SECRET, timestamp=ts
    )
    assert header == expected


def test_a_tampered_payload_is_rejected() -> None:
    payload, _ = _signed_event()
    header = se.sign(payload, SECRET)
    tampered = payload.replace(b'"livemode": false', b'"livemode": true', 1)
    assert tampered != payload

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, header, SECRET)


def test_another_secret_is_rejected() -> None:
    payload, _ = _signed_event()

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, se.sign(payload, "whsec_other_fake"), SECRET)


def test_an_old_timestamp_is_rejected_beyond_the_tolerance() -> None:
    payload, _ = _signed_event()
    now = int(time.time())

    stripe.Webhook.construct_event(payload, se.sign(payload, SECRET, now - 200), SECRET)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(payload, se.sign(payload, SECRET, now - 400), SECRET)


# --------------------------------------------------------------------------
# Object builders
# --------------------------------------------------------------------------


def test_builders_make_objects_the_library_recognises() -> None:
    pi = se.payment_intent(
        amount=2000,
        metadata=se.wallet_metadata("w1", "2500", "pack_2500", kind="auto_topup", crossing=3),
    )
    objects = {
        "checkout.session": (se.checkout_session(), stripe.checkout.Session),
        "payment_intent": (pi, stripe.PaymentIntent),
        "charge": (se.charge(amount_refunded=500), stripe.Charge),
        "dispute": (se.dispute(status="under_review"), stripe.Dispute),
        "invoice": (se.invoice(), stripe.Invoice),
    }
    for kind, (obj, cls) in objects.items():
        evt = stripe.Event.construct_from(se.event(f"{kind}.test", obj), API_KEY)
        assert isinstance(evt.data.object, cls), kind
        assert evt.data.object.object == kind

    assert pi["metadata"] == {
        "wallet_id": "w1",
        "credits": "2500",
        "offer": "pack_2500",
        "kind": "auto_topup",
        "crossing": "3",
    }
    assert pi["amount_received"] == 2000
    assert pi["latest_charge"].startswith("ch_")
    assert se.charge(amount=500, amount_refunded=250)["refunded"] is False
    assert se.charge(amount=500, amount_refunded=500)["refunded"] is True


def test_event_shape() -> None:
    obj = se.charge(id="ch_x")

    evt = se.event("charge.refunded", obj, event_id="evt_x", created=1795255200)

    assert evt == {
        "id": "evt_x",
        "object": "event",
        "api_version": se.API_VERSION,
        "created": 1795255200,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "charge.refunded",
    }


# --------------------------------------------------------------------------
# Event fixtures
# --------------------------------------------------------------------------


def test_there_are_stripe_event_fixtures() -> None:
    assert len(FIXTURES) == 9


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_parses_as_a_stripe_event(path: Path) -> None:
    values = json.loads(path.read_text())

    evt = stripe.Event.construct_from(values, API_KEY)

    assert evt.object == "event"
    assert evt.api_version == se.API_VERSION
    assert evt.livemode is False
    assert evt.type.replace(".", "-").replace("_", "-") in path.stem
    kinds = {
        "checkout.session.": ("checkout.session", stripe.checkout.Session),
        "payment_intent.": ("payment_intent", stripe.PaymentIntent),
        "charge.dispute.": ("dispute", stripe.Dispute),
        "charge.": ("charge", stripe.Charge),
    }
    kind, cls = next(v for prefix, v in kinds.items() if evt.type.startswith(prefix))
    assert evt.data.object.object == kind
    assert isinstance(evt.data.object, cls)
    # The signed body goes through the library too.
    payload = path.read_bytes()
    stripe.Webhook.construct_event(payload, se.sign(payload, SECRET), SECRET)


def _fixture(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())["data"]["object"]
    return obj


def test_fixtures_tell_one_consistent_story() -> None:
    paid = _fixture("stripe-checkout-session-completed.json")
    refunded = _fixture("stripe-charge-refunded.json")
    created = _fixture("stripe-charge-dispute-created.json")
    closed = _fixture("stripe-charge-dispute-closed.json")
    unpaid = _fixture("stripe-checkout-session-completed-unpaid.json")
    succeeded = _fixture("stripe-checkout-session-async-payment-succeeded.json")
    failed = _fixture("stripe-checkout-session-async-payment-failed.json")
    topup = _fixture("stripe-payment-intent-succeeded.json")
    declined = _fixture("stripe-payment-intent-payment-failed.json")

    pi = paid["payment_intent"]
    assert refunded["payment_intent"] == created["payment_intent"] == closed["payment_intent"] == pi
    assert created["charge"] == closed["charge"] == refunded["id"]
    assert created["id"] == closed["id"]
    assert (created["status"], closed["status"]) == ("needs_response", "won")
    assert (refunded["amount"], refunded["amount_refunded"], refunded["refunded"]) == (
        500,
        250,
        False,
    )
    assert paid["metadata"] == refunded["metadata"]
    assert paid["metadata"] == {
        "wallet_id": "w_demo",
        "credits": "500",
        "offer": "pack_500",
        "kind": "checkout",
    }
    assert (paid["amount_total"], paid["currency"], paid["payment_status"]) == (500, "usd", "paid")
    assert paid["invoice"].startswith("in_")

    assert unpaid["id"] == succeeded["id"] == failed["id"]
    assert unpaid["payment_intent"] == succeeded["payment_intent"] == failed["payment_intent"]
    assert (unpaid["payment_status"], succeeded["payment_status"], failed["payment_status"]) == (
        "unpaid",
        "paid",
        "unpaid",
    )
    assert (unpaid["amount_total"], unpaid["currency"]) == (5000, "eur")
    assert unpaid["metadata"] == {
        "wallet_id": "w_demo",
        "credits": "5000",
        "offer": "fiat",
        "kind": "checkout",
    }

    assert topup["metadata"] == {
        "wallet_id": "w_demo",
        "credits": "2500",
        "offer": "pack_2500",
        "kind": "auto_topup",
        "crossing": "1",
    }
    assert topup["status"] == "succeeded"
    assert topup["customer"] == declined["customer"] == paid["customer"]
    assert declined["status"] == "requires_payment_method"
    assert declined["last_payment_error"]["type"] == "card_error"
    assert declined["metadata"]["kind"] == "auto_topup"


# --------------------------------------------------------------------------
# The fake API and the real client
# --------------------------------------------------------------------------


def test_parse_form_nests_brackets() -> None:
    parsed = parse_form(
        [
            ("mode", "payment"),
            ("metadata[wallet_id]", "w1"),
            ("metadata[0]", "kept as a key"),
            ("line_items[0][price_data][unit_amount]", "500"),
            ("line_items[0][quantity]", "2"),
            ("line_items[1][price]", "price_x"),
            ("expand[]", "payment_intent"),
            ("expand[]", "invoice"),
        ]
    )

    assert parsed == {
        "mode": "payment",
        "metadata": {"wallet_id": "w1", "0": "kept as a key"},
        "line_items": [
            {"price_data": {"unit_amount": "500"}, "quantity": "2"},
            {"price": "price_x"},
        ],
        "expand": ["payment_intent", "invoice"],
    }
    with pytest.raises(ValueError):
        parse_form([("a", "1"), ("a[b]", "2")])


def test_create_and_retrieve_a_checkout_session(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(
        params=_session_params(line_items=_line_items(250, 2))
    )

    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.mode, session.status, session.payment_status) == ("payment", "open", "unpaid")
    assert (session.amount_total, session.currency) == (500, "usd")
    assert session.metadata.to_dict() == se.wallet_metadata("w1", "500", "pack_500")
    assert session.client_reference_id == "w1"
    assert session.customer is None
    assert session.customer_creation == "if_required"
    assert session.invoice is None and session.payment_intent is None
    assert session.url == f"{fake.base_url}/checkout/{session.id}"
    assert session.expires_at - session.created == 24 * 3600
    assert session.livemode is False

    request = fake.requests[-1]
    assert (request.method, request.path, request.status) == ("POST", "/v1/checkout/sessions", 200)
    assert request.params["line_items"][0]["price_data"]["unit_amount"] == "250"
    assert request.params["metadata"]["wallet_id"] == "w1"
    assert request.idempotency_key  # stripe-python sends one with every POST
    assert request.headers["authorization"] == f"Bearer {API_KEY}"

    again = client.v1.checkout.sessions.retrieve(session.id)
    assert again.to_dict() == session.to_dict()
    assert fake.checkout_session(session.id)["id"] == session.id

    items = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert items.line_items.data[0].quantity == 2
    assert items.line_items.data[0].price.unit_amount == 250


def test_an_unknown_session_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.retrieve("cs_test_nope")

    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"success_url": None}, "success_url"),
        ({"line_items": None}, "line_items"),
        ({"mode": None}, "mode"),
        ({"mode": "donation"}, "mode"),
        ({"line_items": [{"price_data": {"currency": "usd", "unit_amount": 5}}]}, None),
        ({"bogus": "1"}, "bogus"),
    ],
)
def test_invalid_checkout_sessions_are_refused(
    client: stripe.StripeClient, params: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.checkout.sessions.create(params=_session_params(**params))

    assert err.value.http_status == 400
    assert err.value.error.type == "invalid_request_error"
    if param is not None:
        assert err.value.param == param


def test_idempotency_keys_replay_and_refuse_other_parameters(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    first = client.v1.checkout.sessions.create(
        params=_session_params(), options={"idempotency_key": "checkout-w1-1"}
    )
    replay = client.v1.checkout.sessions.create(
        params=_session_params(), options={"idempotency_key": "checkout-w1-1"}
    )

    assert replay.id == first.id
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    created = [r for r in fake.requests if r.idempotency_key == "checkout-w1-1" and r.status == 200]
    assert len(created) == 2
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=_session_params(client_reference_id="w2"),
            options={"idempotency_key": "checkout-w1-1"},
        )
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(
            params={"amount": 500, "currency": "usd"}, options={"idempotency_key": "checkout-w1-1"}
        )


def test_requests_without_a_test_key_are_401(fake: FakeStripe) -> None:
    request = urllib.request.Request(f"{fake.base_url}/v1/checkout/sessions/cs_test_x")
    with pytest.raises(urllib.error.HTTPError) as err:
        _NO_PROXY.open(request, timeout=10)
    with err.value:
        assert err.value.code == 401
        body = json.loads(err.value.read())
    assert body["error"]["type"] == "invalid_request_error"
    assert "API key" in body["error"]["message"]

    live = stripe.StripeClient(
        "sk_live_not_a_real_key", base_addresses={"api": fake.base_url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError):
        live.v1.checkout.sessions.retrieve("cs_test_x")


def test_a_declined_card_raises_card_error(fake: FakeStripe, client: stripe.StripeClient) -> None:
    params = {
        "amount": 2000,
        "currency": "usd",
        "customer": "cus_test_fake",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
        "off_session": True,
        "metadata": se.wallet_metadata("w1", "2500", "pack_2500", kind="auto_topup", crossing=1),
    }
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "topup-1"})

    error = err.value.error
    assert err.value.http_status == 402
    assert (err.value.code, error.decline_code) == ("card_declined", "generic_decline")
    assert error.message == "Your card was declined."
    assert error.payment_intent.status == "requires_payment_method"
    assert error.payment_intent.metadata["crossing"] == "1"
    pi = fake.payment_intent(error.payment_intent.id)
    assert pi["last_payment_error"]["decline_code"] == "generic_decline"
    assert fake.charge(pi["latest_charge"])["status"] == "failed"

    # A declined request is kept under its key like any other that ran.
    with pytest.raises(stripe.CardError) as again:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "topup-1"})
    assert again.value.error.payment_intent.id == error.payment_intent.id


def test_a_good_card_succeeds(fake: FakeStripe, client: stripe.StripeClient) -> None:
    meta = se.wallet_metadata("w1", "2500", "pack_2500", kind="auto_topup", crossing=2)
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "customer": "cus_test_fake",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "off_session": True,
            "metadata": meta,
        }
    )

    assert pi.object == "payment_intent"
    assert pi.id.startswith("pi_")
    assert (pi.status, pi.amount, pi.amount_received, pi.currency) == (
        "succeeded",
        2000,
        2000,
        "usd",
    )
    assert pi.metadata.to_dict() == meta
    assert pi.last_payment_error is None
    charge = fake.charge(pi.latest_charge)
    assert (charge["status"], charge["amount"], charge["payment_intent"]) == (
        "succeeded",
        2000,
        pi.id,
    )
    assert charge["metadata"] == meta
    assert charge["receipt_url"].startswith(fake.base_url)


def test_completing_a_checkout_pays_it(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(
        params=_session_params(
            customer_creation="always",
            invoice_creation={"enabled": True},
            payment_intent_data={
                "metadata": se.wallet_metadata("w1", "500", "pack_500"),
                "setup_future_usage": "off_session",
            },
        )
    )

    done = fake.complete_checkout(session.id)

    assert (done["status"], done["payment_status"], done["url"]) == ("complete", "paid", None)
    assert done["customer"].startswith("cus_")
    pi = fake.payment_intent(done["payment_intent"])
    assert pi["metadata"] == se.wallet_metadata("w1", "500", "pack_500")
    assert (pi["status"], pi["amount_received"], pi["customer"]) == (
        "succeeded",
        500,
        done["customer"],
    )
    assert pi["payment_method"] == "pm_card_visa"
    assert pi["setup_future_usage"] == "off_session"
    assert fake.charge(pi["latest_charge"])["receipt_url"]

    retrieved = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent.latest_charge"]}
    )
    assert retrieved.payment_intent.latest_charge.paid is True
    invoice = client.v1.invoices.retrieve(done["invoice"])
    assert invoice.invoice_pdf == f"{fake.base_url}/invoices/{invoice.id}.pdf"
    assert invoice.hosted_invoice_url == f"{fake.base_url}/invoices/{invoice.id}"
    assert (invoice.status, invoice.amount_paid, invoice.customer) == (
        "paid",
        500,
        done["customer"],
    )
    with _NO_PROXY.open(invoice.invoice_pdf, timeout=10) as pdf:
        assert pdf.read().startswith(b"%PDF-")

    with pytest.raises(StripeError):
        fake.complete_checkout(session.id)


def test_an_asynchronous_payment_completes_unpaid_then_settles(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(
        params=_session_params(line_items=_line_items(5000, currency="eur"))
    )

    done = fake.complete_checkout(session.id, paid=False)

    assert (done["status"], done["payment_status"]) == ("complete", "unpaid")
    assert done["customer"] is None
    assert fake.payment_intent(done["payment_intent"])["status"] == "processing"
    settled = fake.settle_checkout(session.id)
    assert settled["payment_status"] == "paid"
    assert fake.payment_intent(done["payment_intent"])["amount_received"] == 5000


def test_refunds_add_up(fake: FakeStripe, client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )

    partial = fake.refund_charge(pi.latest_charge, 200)
    assert (partial["amount_refunded"], partial["refunded"]) == (200, False)
    with pytest.raises(StripeError, match="greater than unrefunded"):
        fake.refund_charge(pi.latest_charge, 400)
    full = fake.refund_charge(pi.latest_charge)
    assert (full["amount_refunded"], full["refunded"]) == (500, True)


# --------------------------------------------------------------------------
# Delivery and the webhook command
# --------------------------------------------------------------------------


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    events: list[Any]


class _Endpoint(BaseHTTPRequestHandler):
    """A webhook endpoint that checks signatures as the service must."""

    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            evt = stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"], SECRET)
        except stripe.SignatureVerificationError:
            status, answer = 400, {"message": "bad signature"}
        else:
            self.server.events.append(evt)
            status, answer = 200, {"received": evt.id}
        raw = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[Any]]]:
    server = _Receiver(("127.0.0.1", 0), _Endpoint)
    server.events = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/webhooks/stripe", server.events
    finally:
        server.shutdown()
        server.server_close()


def test_post_delivers_a_signed_event(endpoint: tuple[str, list[Any]]) -> None:
    url, received = endpoint
    evt = se.event("payment_intent.succeeded", se.payment_intent())

    assert se.post(url, evt, SECRET) == (200, {"received": evt["id"]})
    assert received[0].data.object.id == evt["data"]["object"]["id"]
    assert se.post(url, evt, "whsec_wrong_fake") == (400, {"message": "bad signature"})


def test_the_command_pays_a_checkout(
    fake: FakeStripe,
    client: stripe.StripeClient,
    endpoint: tuple[str, list[Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, received = endpoint
    session = client.v1.checkout.sessions.create(params=_session_params())
    common = ["--url", url, "--api-base", fake.base_url, "--secret", SECRET]

    assert stripe_webhook.main(["pay", session.id, *common]) == 0

    assert [e.type for e in received] == ["checkout.session.completed", "payment_intent.succeeded"]
    paid, pi = received[0].data.object, received[1].data.object
    assert (paid.id, paid.payment_status) == (session.id, "paid")
    assert pi.id == paid.payment_intent
    assert pi.metadata.to_dict() == se.wallet_metadata("w1", "500", "pack_500")
    assert "checkout.session.completed" in capsys.readouterr().out

    assert stripe_webhook.main(["refund", pi.id, "--amount", "100", *common]) == 0
    refunded = received[-1]
    assert refunded.type == "charge.refunded"
    assert (refunded.data.object.amount_refunded, refunded.data.object.refunded) == (100, False)

    # Paying again sends the events again (the endpoint may have been down).
    assert stripe_webhook.main(["pay", session.id, *common]) == 0
    assert "already complete" in capsys.readouterr().err
    assert [e.type for e in received[-2:]] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
    ]
    assert received[-2].data.object.payment_intent == pi.id

    assert stripe_webhook.main(["pay", "cs_test_nope", *common]) == 1
    assert "No such checkout.session" in capsys.readouterr().err


def test_the_command_pays_asynchronously_then_settles(
    fake: FakeStripe, client: stripe.StripeClient, endpoint: tuple[str, list[Any]]
) -> None:
    url, received = endpoint
    session = client.v1.checkout.sessions.create(params=_session_params())
    common = ["--url", url, "--api-base", fake.base_url]

    assert stripe_webhook.main(["pay", session.id, "--unpaid", *common]) == 0
    assert stripe_webhook.main(["settle", session.id, "--failed", *common]) == 0

    assert [e.type for e in received] == [
        "checkout.session.completed",
        "checkout.session.async_payment_failed",
        "payment_intent.payment_failed",
    ]
    assert received[0].data.object.payment_status == "unpaid"
    assert received[2].data.object.last_payment_error.type == "card_error"


def test_the_command_sends_files(
    endpoint: tuple[str, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, received = endpoint
    fixture = EVENTS_DIR / "stripe-charge-dispute-created.json"

    assert stripe_webhook.main(["send", str(fixture), "--url", url]) == 0
    assert stripe_webhook.main(["send", str(fixture), "--url", url, "--new-id"]) == 0
    original = json.loads(fixture.read_text())
    assert received[0].id == original["id"] != received[1].id
    assert received[1].data.object.id == original["data"]["object"]["id"]

    bare = tmp_path / "dispute.json"
    bare.write_text(json.dumps(original["data"]["object"]))
    assert stripe_webhook.main(["send", str(bare), "--url", url]) == 1
    assert "--type" in capsys.readouterr().err
    assert (
        stripe_webhook.main(["send", str(bare), "--type", "charge.dispute.closed", "--url", url])
        == 0
    )
    assert received[-1].type == "charge.dispute.closed"
