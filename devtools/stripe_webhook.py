"""Deliver Stripe webhook events to the locally running service, signed as Stripe signs them.

With the local API running (``make run``, on ``$PORT``, default 3000) and its stand-in for
Stripe's API (on ``$LOCAL_STRIPE_PORT``, default 12111; or ``python -m devtools.fake_stripe``)::

    python -m devtools.stripe_webhook pay cs_test_…            # the customer pays a checkout
    python -m devtools.stripe_webhook pay cs_test_… --unpaid   # … with a payment still processing
    python -m devtools.stripe_webhook settle cs_test_… [--failed]   # that payment ends
    python -m devtools.stripe_webhook refund pi_… [--amount 250]
    python -m devtools.stripe_webhook send events/stripe-charge-dispute-created.json

``pay``, ``settle`` and ``refund`` change the objects in the fake Stripe first (through its
``/_test/`` endpoints), then post the events Stripe would send about them (``pay`` on a session
already complete sends its events again). ``send`` posts an event file as it is (an Event
object; a bare object is wrapped with ``--type``).

Environment: ``STRIPE_WEBHOOK_SECRET`` (default ``whsec_local_fake``), the secret the service
checks signatures with; ``STRIPE_API_BASE`` (default ``http://127.0.0.1:$LOCAL_STRIPE_PORT``,
port 12111 if unset), the fake Stripe API; ``PORT`` (default 3000), the local API's port, for
the webhook endpoint ``http://127.0.0.1:$PORT/v1/webhooks/stripe`` (``--url`` sets another),
as ``make run`` reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devtools import stripe_events as se
from devtools.fake_stripe import TEST_API_KEY

Json = dict[str, Any]

DEFAULT_PORT = 3000  # make run's, as devtools.local_server
DEFAULT_STRIPE_PORT = 12111  # the Stripe stand-in's, as devtools.fake_stripe
WEBHOOK_PATH = "/v1/webhooks/stripe"
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}{WEBHOOK_PATH}"
DEFAULT_SECRET = "whsec_local_fake"  # not a secret: the local service's test value

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CommandError(Exception):
    """Something the user should be told, with the exit status to leave with."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _fake_stripe(
    api_base: str, method: str, path: str, params: dict[str, str] | None = None
) -> Json:
    """Call the fake Stripe API; its errors become :class:`CommandError`."""
    data = urllib.parse.urlencode(params or {}).encode() if method == "POST" else None
    request = urllib.request.Request(
        api_base.rstrip("/") + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {TEST_API_KEY}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            body: Json = json.loads(response.read())
            return body
    except urllib.error.HTTPError as err:
        with err:
            raw = err.read()
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode(errors="replace")
        raise CommandError(f"fake Stripe: {method} {path} -> {err.code}: {message}") from None
    except (urllib.error.URLError, OSError) as err:
        raise CommandError(
            f"cannot reach the fake Stripe API at {api_base} ({err}); start it with "
            "`python -m devtools.fake_stripe` or set STRIPE_API_BASE",
            status=2,
        ) from None


def _deliver(events: list[Json], url: str, secret: str) -> bool:
    """Post each event, print what the endpoint answered; True when every answer is 2xx."""
    ok = True
    for evt in events:
        try:
            status, body = se.post(url, evt, secret)
        except (urllib.error.URLError, OSError) as err:
            raise CommandError(
                f"cannot reach the webhook endpoint {url} ({err}); is the local server running?",
                status=2,
            ) from None
        print(f"{evt['type']} {evt['id']} -> {status}")
        print(json.dumps(body, indent=2))
        ok = ok and 200 <= status < 300
    return ok


def _pay(args: argparse.Namespace, api_base: str) -> list[Json]:
    session = _fake_stripe(api_base, "GET", f"/v1/checkout/sessions/{args.session_id}")
    if session["status"] == "open":
        params = {"paid": "false" if args.unpaid else "true", "payment_method": args.payment_method}
        session = _fake_stripe(
            api_base, "POST", f"/_test/checkout/sessions/{args.session_id}/complete", params
        )
    elif session["status"] == "complete":
        # As Stripe retries a delivery: the events again, say after the endpoint was down.
        print(f"{args.session_id} is already complete: sending its events again", file=sys.stderr)
    else:
        raise CommandError(f"{args.session_id} is {session['status']}: it cannot be paid")
    events = [se.event("checkout.session.completed", session)]
    if session["payment_status"] == "paid" and session["payment_intent"]:
        pi = _fake_stripe(api_base, "GET", f"/v1/payment_intents/{session['payment_intent']}")
        events.append(se.event("payment_intent.succeeded", pi))
    return events


def _settle(args: argparse.Namespace, api_base: str) -> list[Json]:
    succeeded = not args.failed
    session = _fake_stripe(
        api_base,
        "POST",
        f"/_test/checkout/sessions/{args.session_id}/settle",
        {"succeeded": "true" if succeeded else "false"},
    )
    pi = _fake_stripe(api_base, "GET", f"/v1/payment_intents/{session['payment_intent']}")
    if succeeded:
        return [
            se.event("checkout.session.async_payment_succeeded", session),
            se.event("payment_intent.succeeded", pi),
        ]
    return [
        se.event("checkout.session.async_payment_failed", session),
        se.event("payment_intent.payment_failed", pi),
    ]


def _refund(args: argparse.Namespace, api_base: str) -> list[Json]:
    pi = _fake_stripe(api_base, "GET", f"/v1/payment_intents/{args.payment_intent_id}")
    charge_id = pi.get("latest_charge")
    if not charge_id:
        raise CommandError(f"{args.payment_intent_id} has no charge to refund")
    params = {} if args.amount is None else {"amount": str(args.amount)}
    charge = _fake_stripe(api_base, "POST", f"/_test/charges/{charge_id}/refund", params)
    return [se.event("charge.refunded", charge)]


def _send(args: argparse.Namespace, api_base: str) -> list[Json]:
    try:
        loaded = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot read {args.file}: {err}") from None
    if not isinstance(loaded, dict):
        raise CommandError(f"{args.file} holds no JSON object")
    if loaded.get("object") == "event":
        if args.type and args.type != loaded.get("type"):
            raise CommandError(
                f"{args.file} is already an Event of type {loaded.get('type')}; drop --type"
            )
        evt = loaded
    else:
        if not args.type:
            raise CommandError(
                f"{args.file} holds a bare {loaded.get('object', 'object')}: "
                "say which event it is with --type"
            )
        evt = se.event(args.type, loaded)
    if args.new_id:
        evt = {**evt, "id": se.new_id("evt"), "created": se.now()}
    return [evt]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"the webhook endpoint (default http://127.0.0.1:$PORT{WEBHOOK_PATH}, "
        f"$PORT defaulting to {DEFAULT_PORT})",
    )
    common.add_argument(
        "--secret",
        default=argparse.SUPPRESS,
        help=f"the endpoint's signing secret (default $STRIPE_WEBHOOK_SECRET or {DEFAULT_SECRET})",
    )
    common.add_argument(
        "--api-base",
        default=argparse.SUPPRESS,
        help="the fake Stripe API (default $STRIPE_API_BASE or "
        f"http://127.0.0.1:$LOCAL_STRIPE_PORT, port {DEFAULT_STRIPE_PORT} if unset)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m devtools.stripe_webhook",
        description="Send signed Stripe webhook events to the local service.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    pay = commands.add_parser(
        "pay",
        parents=[common],
        help="pay a checkout session in the fake Stripe and post checkout.session.completed "
        "(and payment_intent.succeeded)",
    )
    pay.add_argument("session_id", help="the checkout session (cs_test_…)")
    pay.add_argument(
        "--unpaid",
        action="store_true",
        help="an asynchronous payment still processing: payment_status unpaid",
    )
    pay.add_argument(
        "--payment-method", default="pm_card_visa", help="the payment method (pm_card_visa)"
    )
    pay.set_defaults(run=_pay)

    settle = commands.add_parser(
        "settle",
        parents=[common],
        help="end the processing payment of a session paid with --unpaid and post "
        "checkout.session.async_payment_succeeded (or _failed)",
    )
    settle.add_argument("session_id", help="the checkout session (cs_test_…)")
    settle.add_argument("--failed", action="store_true", help="the payment fails")
    settle.set_defaults(run=_settle)

    send = commands.add_parser("send", parents=[common], help="sign and post an event file")
    send.add_argument("file", help="a JSON Event, or a bare object with --type")
    send.add_argument("--type", help="the event type, to wrap a bare object")
    send.add_argument("--new-id", action="store_true", help="give the event a fresh id and time")
    send.set_defaults(run=_send)

    refund = commands.add_parser(
        "refund",
        parents=[common],
        help="refund a payment's charge in the fake Stripe and post charge.refunded",
    )
    refund.add_argument("payment_intent_id", help="the PaymentIntent (pi_…)")
    refund.add_argument(
        "--amount", type=int, help="in the currency's smallest unit (default: all that is left)"
    )
    refund.set_defaults(run=_refund)
    return parser


def default_url() -> str:
    """The local API's webhook endpoint, on ``$PORT`` as ``make run`` serves it."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or DEFAULT_PORT}{WEBHOOK_PATH}"


def default_api_base() -> str:
    """``$STRIPE_API_BASE``, else the Stripe stand-in on ``$LOCAL_STRIPE_PORT``."""
    if os.environ.get("STRIPE_API_BASE"):
        return os.environ["STRIPE_API_BASE"]
    return f"http://127.0.0.1:{os.environ.get('LOCAL_STRIPE_PORT') or DEFAULT_STRIPE_PORT}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = getattr(args, "url", None) or default_url()
    secret = (
        getattr(args, "secret", None) or os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_SECRET
    )
    api_base = getattr(args, "api_base", None) or default_api_base()
    try:
        events = args.run(args, api_base)
        return 0 if _deliver(events, url, secret) else 1
    except CommandError as err:
        print(err, file=sys.stderr)
        return err.status


if __name__ == "__main__":
    raise SystemExit(main())
