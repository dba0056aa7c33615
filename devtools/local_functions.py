"""The functions of ``template.yaml`` as the local server runs them, and their triggers.

Each function is named by its handler's entry (``"metering_api.app:handler"``) and runs either
in the server's :class:`~devtools.lambda_pool.LambdaPool` (worker processes, as Lambda runs
execution environments) or, with no pool, in the server's own process, one invocation at a time.

* :class:`Schedule` stands in for EventBridge Scheduler (the hold sweeper, the reset dispatcher).
* :class:`LocalResetQueue` stands in for the reset queue: what the dispatcher sends is handed
  to the reset worker at once, in the same process (:func:`reset_dispatch`).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import table
from devtools.lambda_context import FakeLambdaContext
from devtools.lambda_pool import LambdaPool

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Function:
    template_id: str  # its resource in template.yaml
    entry: str  # "module:attribute", importable with the functions on the path
    name: str  # its function name in the logs and the context


API = Function("MeteringApiFunction", "metering_api.app:handler", "credit-meter-metering-api")
WEBHOOK = Function(
    "StripeWebhookFunction", "stripe_webhook.app:handler", "credit-meter-stripe-webhook"
)
BYOK = Function("ByokApiFunction", "byok_api.app:handler", "credit-meter-byok-api")
PROJECTOR = Function(
    "LedgerProjectorFunction", "ledger_projector.app:handler", "credit-meter-ledger-projector"
)
ALERTS = Function("AlertsFunction", "alerts.app:handler", "credit-meter-alerts")
SWEEPER = Function("HoldSweeperFunction", "hold_sweeper.app:handler", "credit-meter-hold-sweeper")
RESET_DISPATCHER = Function(
    "ResetDispatcherFunction",
    "devtools.local_functions:reset_dispatch",
    "credit-meter-reset-dispatcher",
)


def function_timeout(function: Function, path: Path | str = table.DEFAULT_TEMPLATE) -> float:
    """The function's ``Timeout`` in the template (its own, else ``Globals``; Lambda's 3 s
    default without either)."""
    template = table.load_template(path)
    own = (template.get("Resources") or {}).get(function.template_id, {}).get("Properties") or {}
    timeout = own.get("Timeout") or (template.get("Globals") or {}).get("Function", {}).get(
        "Timeout"
    )
    return float(timeout) if isinstance(timeout, int | float) else 3.0


def load_entry(entry: str) -> Handler:
    """Import an entry's handler in this process."""
    module_name, _, attribute = entry.partition(":")
    try:
        handler: Handler = getattr(importlib.import_module(module_name), attribute or "handler")
    except ModuleNotFoundError as exc:
        raise SystemExit(
            f"error: cannot import {module_name} ({exc}); run from the repository root with "
            "PYTHONPATH=layers/credit_meter:functions:. (as `make run` does)"
        ) from exc
    return handler


def handler_for(function: Function, pool: LambdaPool | None) -> Handler:
    """The function as a handler: run in ``pool``'s workers, or (no pool) in this process."""
    if pool is None:
        return load_entry(function.entry)
    return pool.function(function.entry, function.name, function_timeout(function))


class Schedule:
    """Invoke a handler every ``interval`` seconds in a thread, as EventBridge Scheduler would,
    with the input the template gives the schedule."""

    def __init__(self, handler: Handler, interval: float, job: str, function_name: str) -> None:
        self.handler = handler
        self.interval = interval
        self.job = job
        self.function_name = function_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{job}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            scheduled = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            event = {"job": self.job, "scheduled_time": scheduled}
            try:
                self.handler(event, FakeLambdaContext(function_name=self.function_name))
            except Exception:  # the scheduler would retry; locally the next run does
                traceback.print_exc()


LOCAL_RESET_QUEUE_URL = "https://sqs.local/credit-meter-reset-queue"


class LocalResetQueue:
    """Stands in for the reset queue's SQS client: each batch the dispatcher sends becomes an
    SQS event for the reset worker, invoked at once. Records the worker reports as failed are
    printed; the wallets stay due, so the next dispatch queues them again."""

    def __init__(self, worker: Handler) -> None:
        self.worker = worker

    def send_message_batch(
        self,
        QueueUrl: str,  # SQS's own argument names
        Entries: list[dict[str, Any]],
    ) -> dict[str, Any]:
        now_ms = str(int(time.time() * 1000))
        records = [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": entry["MessageBody"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "local",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:credit-meter-reset-queue",
                "awsRegion": "us-east-1",
            }
            for entry in Entries
        ]
        response = self.worker(
            {"Records": records}, FakeLambdaContext(function_name="credit-meter-monthly-reset")
        )
        for failure in (response or {}).get("batchItemFailures", []):
            print(f"reset worker: record {failure['itemIdentifier']} failed", flush=True)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


@functools.cache
def _reset_dispatcher() -> Handler:
    """The real dispatcher, its SQS client replaced by :class:`LocalResetQueue` (once per
    process: the replacement is module state)."""
    module = importlib.import_module("monthly_reset.app")
    os.environ["RESET_QUEUE_URL"] = LOCAL_RESET_QUEUE_URL
    vars(module)["_sqs"] = LocalResetQueue(module.handler)  # what sqs_client() hands out
    dispatch: Handler = module.dispatch
    return dispatch


def reset_dispatch(event: dict[str, Any], context: Any) -> Any:
    """The reset dispatcher's entry locally: ``monthly_reset.app.dispatch`` with the reset
    queue played by :class:`LocalResetQueue`."""
    return _reset_dispatcher()(event, context)
