"""Auto top-up: watches wallet writes on the table's stream (only wallets with auto top-up on,
by the event source's filter) and buys the configured pack with the saved card once per
crossing below the threshold (:meth:`credit_meter.auto_topup.AutoTopups.on_wallet_change`).

The credits arrive like any other payment's, through the Stripe webhook. A record that fails
(Stripe unreachable, say) is reported as a batch item failure and retried from there; the
crossing number in the idempotency key makes a retry ask Stripe for the same payment.
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

from credit_meter.items import WALLET_SK
from credit_meter.payments import Payments
from credit_meter.store import from_item
from credit_meter.stripe_gateway import StripeGateway

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def watch(record: DynamoDBRecord) -> None:
    change = record.raw_event.get("dynamodb", {})
    new = change.get("NewImage")
    if not new or from_item(change.get("Keys", {})).get("sk") != WALLET_SK:
        return
    old = change.get("OldImage")
    attempt = Payments().on_wallet_change(
        from_item(old) if old else None, from_item(new), StripeGateway
    )
    if attempt is None:
        return
    wallet_id = new["wallet_id"]["S"]
    logger.info(
        "auto top-up attempted",
        extra={"wallet_id": wallet_id, "status": attempt.status, "payment_id": attempt.payment_id},
    )
    name = "AutoTopupsDeclined" if attempt.status == "declined" else "AutoTopupsStarted"
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=watch, processor=processor, context=context
    )
