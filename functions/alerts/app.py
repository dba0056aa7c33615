"""Alerts and auto top-up: the table stream's second reader (after the ledger projector; a
shard throttles beyond two), fed every wallet write (the event source's filter: ``sk = W``).

For each write it publishes the alerts the write fired (:func:`credit_meter.core.alerts.crossings`,
delivered once by :func:`credit_meter.controls.notify.publish`; docs/events.md) and runs the auto
top-up (:meth:`credit_meter.payments.auto_topup.AutoTopups.on_wallet_change`; docs/payments.md),
except in a deployment without Stripe keys (``TOPUPS_ENABLED=false``).

A record that fails is reported as a batch item failure and retried from there; both steps are
safe to repeat (alerts by their ids, purchases by their crossing number).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from credit_meter.controls import notify
from credit_meter.core.alerts import DEPLETED, LIMIT_REACHED, RESTORED, THRESHOLD_CROSSED, crossings
from credit_meter.payments.auto_topup import AutoTopups
from credit_meter.payments.stripe_gateway import StripeGateway
from credit_meter.payments.topups import enabled as topups_enabled
from credit_meter.storage import wallet_record
from credit_meter.storage.store import from_item
from credit_meter.storage.test_clock import with_test_clock
from credit_meter.storage.wallet_record import WALLET_SK

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

# Besides AlertsFired (every alert), one count per event.
ALERT_METRICS = {
    THRESHOLD_CROSSED: "AlertsThresholdCrossed",
    DEPLETED: "AlertsDepleted",
    RESTORED: "AlertsRestored",
    LIMIT_REACHED: "AlertsLimitReached",
}


def top_up(old: dict[str, Any] | None, wallet: dict[str, Any]) -> None:
    if not topups_enabled():  # no Stripe keys in this deployment: nothing to buy with
        return
    attempt = AutoTopups().on_wallet_change(old, wallet, StripeGateway)
    if attempt is None:
        return
    logger.info(
        "auto top-up attempted",
        extra={
            "wallet_id": wallet_record.wallet_id(wallet),
            "status": attempt.status,
            "payment_id": attempt.payment_id,
        },
    )
    name = "AutoTopupsDeclined" if attempt.status == "declined" else "AutoTopupsStarted"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def alert(
    record: DynamoDBRecord,
    old: dict[str, Any] | None,
    wallet: dict[str, Any],
    context: LambdaContext | None,
) -> None:
    change = record.raw_event["dynamodb"]
    record_id = str(change.get("SequenceNumber") or record.event_id)
    at = change.get("ApproximateCreationDateTime")
    before = None if old is None else wallet_record.alert_facts(old)
    after = wallet_record.alert_facts(wallet)
    fired = crossings(before, after, record_id, occurred_at=None if at is None else float(at))
    for sent in notify.publish(fired, context):  # (it logs each one)
        metrics.add_metric(name="AlertsFired", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=ALERT_METRICS[sent.detail_type], unit=MetricUnit.Count, value=1)


def watch(record: DynamoDBRecord, lambda_context: LambdaContext | None = None) -> None:
    change = record.raw_event.get("dynamodb", {})
    new = change.get("NewImage")
    if not new or from_item(change.get("Keys", {})).get("sk") != WALLET_SK:
        return
    old = from_item(change["OldImage"]) if change.get("OldImage") else None
    wallet = from_item(new)
    # Both steps run even when one fails: an SNS outage must not hold up a purchase, nor
    # Stripe's an alert. The record then fails and is retried; the step that succeeded
    # finds its work done.
    failures: list[Exception] = []
    try:
        top_up(old, wallet)
    except Exception as err:
        failures.append(err)
    try:
        alert(record, old, wallet, lambda_context)
    except Exception as err:
        failures.append(err)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup("auto top-up and alerts both failed", failures)


@logger.inject_lambda_context
@metrics.log_metrics
@with_test_clock
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=watch, processor=processor, context=context
    )
