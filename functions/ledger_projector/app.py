"""Projects wallet writes from the table's stream into ledger entries and usage rollups (see
:mod:`credit_meter.reports.projector`). A failed record is reported as a batch item failure, so the
stream retries from it and nothing is skipped; a retried record adds to no rollup twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
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

from credit_meter.reports.projector import project_record
from credit_meter.storage.store import Store, Update, WriteRejected

logger = Logger()
metrics = Metrics()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def project(record: DynamoDBRecord) -> None:
    projection = project_record(record.raw_event)
    store = Store()
    if projection.entries:
        store.put_entries(projection.entries)
        metrics.add_metric(
            name="LedgerEntriesWritten", unit=MetricUnit.Count, value=len(projection.entries)
        )
    for key, fields in projection.grant_lines:
        store.set_fields(key, fields)
    # The record's rollups (its day, month and period) are different items, each guarded by
    # its own watermark: written at once, so a usage record costs one more round trip, not three.
    with ThreadPoolExecutor(max_workers=3) as pool:
        replays = sum(pool.map(lambda update: _add_once(store, update), projection.rollups))
    if replays:
        metrics.add_metric(name="RollupReplaysSkipped", unit=MetricUnit.Count, value=replays)


def _add_once(store: Store, update: Update) -> bool:
    """Add a record to one rollup; True when it had been added already (a replay)."""
    try:
        store.update(update)
    except WriteRejected:
        return True
    return False


class AfterAFailure(Exception):
    """Not tried: an earlier record of the batch failed, and records apply in order."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The batch processor goes on after a failed record, but a wallet's records must apply in
    # order: a rollup's watermark moved past a failed record would refuse its retry as a
    # replay. So once one fails, the rest of the batch fails unread; Lambda retries from the
    # first failure anyway (the stream's checkpoint), and those records are delivered again.
    failed = False

    def in_order(record: DynamoDBRecord) -> None:
        nonlocal failed
        if failed:
            raise AfterAFailure("an earlier record of this batch failed")
        try:
            project(record)
        except Exception:
            failed = True
            raise

    return process_partial_response(
        event=event, record_handler=in_order, processor=processor, context=context
    )
