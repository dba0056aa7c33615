"""Projects wallet writes from the table's stream into ledger entries and usage rollups (see
:mod:`credit_meter.projector`). A failed record is reported as a batch item failure, so the
stream retries from it and nothing is skipped; a retried record adds to no rollup twice."""

from __future__ import annotations

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

from credit_meter.projector import project_record
from credit_meter.store import Store, WriteRejected

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
    for rollup in projection.rollups:
        try:
            store.update(rollup)
        except WriteRejected:  # added already: this record is a replay
            metrics.add_metric(name="RollupReplaysSkipped", unit=MetricUnit.Count, value=1)


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
