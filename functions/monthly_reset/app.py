"""Monthly resets and grant expiry, in two steps so a million wallets due at the same midnight
are spread over many invocations:

* ``dispatch`` (EventBridge Scheduler, every 5 minutes) reads the due index — wallets whose
  period has ended or that hold a grant past its expiry — and queues one SQS message per wallet;
* ``handler`` (SQS, batches of 10) moves each wallet forward with one conditional write
  (``Periods.advance``). A wallet that fails is reported as a batch item failure: SQS delivers
  it again, and after five receives it lands in the dead-letter queue (alarmed). Nothing is
  skipped silently.

Both steps are idempotent: a wallet queued twice, or reset by two invocations at once, is reset
once (the write is conditioned on the period it read).
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from credit_meter.billing.periods import Periods
from credit_meter.storage.test_clock import with_test_clock

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

logger = Logger()
metrics = Metrics()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS)

_SEND_ATTEMPTS = 3
_sqs: SQSClient | None = None
_sqs_lock = threading.Lock()


class DispatchIncomplete(RuntimeError):
    """Some wallets could not be queued; the scheduler retries the run."""


def sqs_client() -> SQSClient:
    """One SQS client per process, made on first use."""
    global _sqs
    with _sqs_lock:
        if _sqs is None:
            import botocore.session

            _sqs = botocore.session.get_session().create_client("sqs")  # type: ignore[assignment]
        assert _sqs is not None
        return _sqs


def queue_wallets(wallet_ids: list[str], scheduled_time: str | None) -> list[str]:
    """Send one message per wallet, ten to a request; returns the ids that could not be sent."""
    queue_url = os.environ["RESET_QUEUE_URL"]
    failed: list[str] = []
    for start in range(0, len(wallet_ids), 10):
        pending = {str(i): wallet_id for i, wallet_id in enumerate(wallet_ids[start : start + 10])}
        for _ in range(_SEND_ATTEMPTS):
            response = sqs_client().send_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {
                        "Id": entry_id,
                        "MessageBody": json.dumps(
                            {"wallet_id": wallet_id, "scheduled_time": scheduled_time}
                        ),
                    }
                    for entry_id, wallet_id in pending.items()
                ],
            )
            pending = {f["Id"]: pending[f["Id"]] for f in response.get("Failed", [])}
            if not pending:
                break
        failed.extend(pending.values())
    return failed


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@with_test_clock
def dispatch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    due = list(Periods().due_wallets())
    failed = queue_wallets(due, event.get("scheduled_time")) if due else []
    metrics.add_metric(name="WalletsDue", unit=MetricUnit.Count, value=len(due))
    summary = {"due": len(due), "queued": len(due) - len(failed)}
    log = logger.info if due else logger.debug
    log("reset dispatch done", extra={"scheduled_time": event.get("scheduled_time"), **summary})
    if failed:
        raise DispatchIncomplete(f"{len(failed)} wallets not queued: {failed[:20]}")
    return summary


def advance(record: SQSRecord) -> None:
    wallet_id = json.loads(record.body)["wallet_id"]
    done = Periods().advance(wallet_id)
    if done.reset:
        metrics.add_metric(name="WalletsReset", unit=MetricUnit.Count, value=1)
    if done.expired:
        metrics.add_metric(name="CreditsExpired", unit=MetricUnit.Count, value=float(done.expired))
    logger.debug("wallet advanced", extra={"wallet_id": wallet_id, "reset": done.reset})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@with_test_clock
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=advance, processor=processor, context=context
    )
