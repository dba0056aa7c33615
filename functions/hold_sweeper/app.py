"""Expires reservations past their ``expires_at`` (EventBridge Scheduler, every minute).

A run that could not expire every due wallet fails after doing all the others, so the
scheduler retries it (and, after its retries, sends it to the dead-letter queue, alarmed).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from credit_meter.metering.service import Metering
from credit_meter.storage.test_clock import with_test_clock

logger = Logger()
metrics = Metrics()
tracer = Tracer()


class SweepIncomplete(RuntimeError):
    """Some wallets could not be swept; the run is retried."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@with_test_clock
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = Metering().sweep()
    metrics.add_metric(name="HoldsExpired", unit=MetricUnit.Count, value=report.expired)
    summary = {"wallets": report.wallets, "expired": report.expired, "failed": report.failed}
    log = logger.info if report.expired or report.failed else logger.debug
    log("sweep done", extra={"scheduled_time": event.get("scheduled_time"), **summary})
    if report.failed:
        raise SweepIncomplete(f"{len(report.failed)} wallets not swept: {report.failed}")
    return summary
