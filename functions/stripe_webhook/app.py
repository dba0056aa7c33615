"""The Stripe webhook (``POST /v1/webhooks/stripe``): verify, observe, record, answer.

Its own function, so the ``stripe`` package loads here (and for checkouts) and never on the
metering hot path. Stripe retries anything but a 2xx for days, so the answers are chosen
with that in mind: a bad signature gets 400 (a forgery, or a misconfigured secret: alarmed);
an event we do not use, or one about a wallet that does not exist, gets 200 (retrying would
not help; the latter is recorded and counted); a busy table gets 503 (retrying will).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import stripe
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from credit_meter.api import problems
from credit_meter.api.models import dump
from credit_meter.api.topup_models import WebhookOut
from credit_meter.core.errors import DomainError
from credit_meter.payments import stripe_webhooks
from credit_meter.payments.payments import Payments
from credit_meter.payments.topups import enabled as topups_enabled
from credit_meter.storage.secret_values import secret
from credit_meter.storage.test_clock import with_test_clock

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

MAX_BODY_BYTES = 256 * 1024  # Stripe's events are far smaller


def _payload() -> bytes | None:
    event = app.current_event
    body = event.body
    if body is None:
        return None
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            return None
    return body.encode("utf-8")


def _rejected(detail: str) -> Response[str]:
    metrics.add_metric(name="WebhookSignatureFailures", unit=MetricUnit.Count, value=1)
    logger.warning("webhook rejected", extra={"reason": detail})
    return problems.problem(400, "invalid-signature", "Invalid signature", detail)


def _out_of_bounds(reason: str) -> Response[Any]:
    """A signed event outside Stripe's own limits (a 3,000-character id, an amount of 1e5000):
    Stripe never sends one, so it is a bug or a leaked signing secret, for an operator to look
    at (logged, counted). It is answered 200 all the same: any other answer makes Stripe
    deliver the same event again for days, and it would never be accepted."""
    metrics.add_metric(name="StripeEventsRejected", unit=MetricUnit.Count, value=1)
    logger.error("webhook event rejected: out of bounds", extra={"reason": reason})
    return Response(200, "application/json", dump(WebhookOut(received=True, handled=False)))


def _short(value: object) -> object:
    """A field of the event for the log, cut short: the log must stay readable."""
    return value[:255] if isinstance(value, str) else None


@app.post("/v1/webhooks/stripe")
def stripe_webhook() -> Response[Any]:
    if not topups_enabled():  # no signing secret to check against: nothing is accepted
        return problems.problem(
            501,
            "topups-disabled",
            "Top-ups are disabled",
            "this deployment has no Stripe keys, so it takes no Stripe events",
        )
    payload = _payload()
    signature = app.current_event.headers.get("stripe-signature")
    if payload is None or len(payload) > MAX_BODY_BYTES:
        return _rejected("the body is missing or too large")
    if not signature:
        return _rejected("the Stripe-Signature header is missing")
    try:
        # Stripe's own check: HMAC-SHA256 of "<t>.<body>", constant-time compare, the
        # timestamp within the default tolerance (300 s) so old deliveries cannot be replayed.
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", "replace"),
            signature,
            secret("STRIPE_WEBHOOK_SECRET"),
            stripe.Webhook.DEFAULT_TOLERANCE,
        )
    except stripe.SignatureVerificationError:
        return _rejected("the signature does not match the body, or it is too old")
    try:
        event = stripe_webhooks.loads(payload)
        observation = stripe_webhooks.observe(event) if isinstance(event, dict) else None
    except stripe_webhooks.EventRejected as rejected:
        return _out_of_bounds(str(rejected))
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return _rejected("the body is not a JSON event")
    log = {"event_id": _short(event.get("id")), "event_type": _short(event.get("type"))}
    if observation is None:
        metrics.add_metric(name="WebhookEventsIgnored", unit=MetricUnit.Count, value=1)
        logger.info("webhook event ignored", extra=log)
        return Response(200, "application/json", dump(WebhookOut(received=True, handled=False)))
    recorded = Payments().record(observation)
    logger.info(
        "webhook event recorded",
        extra={
            **log,
            "payment_id": recorded.payment_id,
            "wallet_id": recorded.wallet_id,
            "status": recorded.status,
            "delta": str(recorded.delta),
        },
    )
    if recorded.unknown_wallet:
        metrics.add_metric(name="PaymentsForUnknownWallets", unit=MetricUnit.Count, value=1)
    if recorded.delta > 0:
        metrics.add_metric(name="TopupsCredited", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name="CreditsToppedUp", unit=MetricUnit.Count, value=float(recorded.delta)
        )
    elif recorded.delta < 0:
        metrics.add_metric(
            name="CreditsTakenBack", unit=MetricUnit.Count, value=float(-recorded.delta)
        )
    body = WebhookOut(
        received=True, handled=True, payment_id=recorded.payment_id, status=recorded.status
    )
    return Response(200, "application/json", dump(body))


@app.exception_handler(DomainError)
def domain_error(error: DomainError) -> Response[str]:
    # Contention (503): Stripe delivers the event again later; counted, as it delays credits.
    metrics.add_metric(name="WebhookErrors", unit=MetricUnit.Count, value=1)
    return problems.from_domain(error)


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return problems.not_found(app.current_event.path)


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response[str]:
    metrics.add_metric(name="WebhookErrors", unit=MetricUnit.Count, value=1)
    logger.exception("unhandled error")
    return problems.server_error()


@logger.inject_lambda_context
@metrics.log_metrics
@with_test_clock
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
