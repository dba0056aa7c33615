"""The operators' alarms, described once per kind and generated per function and queue.

Part of :mod:`devtools.monitoring`, which writes them into ``monitoring/template.yaml``. Their
dimensions refer to that template's parameters (``<Key>FunctionName``, ``<Key>Name`` for a
queue, ``LedgerTableName``, ``HttpApiId``, ``Stage``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOPIC = "OperatorsTopic"
# Powertools' EMF metrics: the namespace and service the main template's Globals set.
NAMESPACE = "CreditMeter"
SERVICE = [{"Name": "service", "Value": "credit-meter"}]


class Ref(str):
    """``!Ref name`` in the output."""


class Sub(str):
    """``!Sub text`` in the output (a block scalar when it spans lines)."""


@dataclass(frozen=True)
class Function:
    """A function of the main template (``<key>Function``) and its two standard alarms."""

    key: str
    errors: str  # the errors alarm's description
    throttles: str
    error_periods: int = 1  # the errors alarm's EvaluationPeriods (minutes in a row)
    errors_id: str = ""  # the errors alarm's logical id, when not <key>ErrorsAlarm

    @property
    def parameter(self) -> str:
        return f"{self.key}FunctionName"


@dataclass(frozen=True)
class Queue:
    key: str  # the main template's logical id
    depth: str = ""  # a dead-letter queue: alarmed on any message, this description

    @property
    def parameter(self) -> str:
        return f"{self.key}Name"


# The order is the dashboard's.
FUNCTIONS = (
    Function("MeteringApi", "Metering API function errors.", "Metering API function throttled."),
    Function(
        "StripeWebhook",
        "Stripe webhook function crashed or timed out (Stripe retries, payments wait).",
        "Stripe webhook function throttled (Stripe retries, payments wait).",
        errors_id="StripeWebhookFunctionErrorsAlarm",  # StripeWebhookErrorsAlarm: its 5xx
    ),
    Function("ByokApi", "BYOK API function crashed or timed out.", "BYOK API function throttled."),
    Function(
        "ByokReveal",
        "BYOK reveal function (product backends get no provider key) crashed or timed out.",
        "BYOK reveal function (product backends get no provider key) throttled.",
    ),
    Function(
        "LedgerProjector",
        "Ledger projector function errors.",
        "Ledger projector function throttled.",
    ),
    Function(
        "Alerts",
        "Alerts function errors (an invocation failed as a whole, a timeout or a crash).",
        "Alerts function throttled.",
    ),
    Function(
        "HoldSweeper",
        "Hold sweeper function errors (some holds were not expired).",
        "Hold sweeper function throttled.",
        error_periods=3,
    ),
    Function(
        "ResetDispatcher",
        "Reset dispatcher errors (some due wallets were not queued).",
        "Reset dispatcher function throttled.",
        error_periods=3,
    ),
    Function("MonthlyReset", "Monthly reset worker errors.", "Monthly reset worker throttled.", 3),
)
QUEUES = (
    Queue("LedgerProjectorDLQ", "Ledger projector dead-letter queue has messages."),
    Queue(
        "AlertsDLQ",
        "Wallet writes the alerts function gave up on (their alerts and auto top-ups were not "
        "done); the messages say which stream records.",
    ),
    Queue("HoldSweeperDLQ", "Hold sweeper runs that failed every retry."),
    Queue("ResetDispatchDLQ", "Reset dispatcher runs that failed every retry."),
    Queue("ResetDLQ", "Wallets whose reset failed five times (in the reset dead-letter queue)."),
    Queue("ResetQueue"),  # a work queue: alarmed on its oldest message's age instead
)


def _dim(name: str, parameter: str) -> list[dict[str, Any]]:
    return [{"Name": name, "Value": Ref(parameter)}]


def _alarm(description: str, metric: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """An alarm that tells operators when it fires and when it clears (``ok=False``: only when
    it fires). Defaults: any datapoint above 0, in one period of a minute."""
    ok = settings.pop("ok", True)
    properties: dict[str, Any] = {"AlarmDescription": description, **metric}
    if "Metrics" not in metric:  # metric math sets these per query
        properties["Statistic"] = settings.pop("Statistic", "Sum")
        properties["Period"] = settings.pop("Period", 60)
    properties["EvaluationPeriods"] = settings.pop("EvaluationPeriods", 1)
    if "DatapointsToAlarm" in settings:
        properties["DatapointsToAlarm"] = settings.pop("DatapointsToAlarm")
    properties["Threshold"] = settings.pop("Threshold", 0)
    if "Unit" in settings:
        properties["Unit"] = settings.pop("Unit")
    properties["ComparisonOperator"] = settings.pop("ComparisonOperator", "GreaterThanThreshold")
    properties["TreatMissingData"] = "notBreaching"
    properties["AlarmActions"] = [Ref(TOPIC)]
    if ok:
        properties["OKActions"] = [Ref(TOPIC)]
    if settings:
        raise TypeError(f"unknown alarm settings: {sorted(settings)}")
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def _metric(namespace: str, name: str, dimensions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions}


def _table_sum(result: tuple[str, str], metrics: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Metric math: the sum of some of the table's metrics (query id: metric name, operation or
    ""), as ``result`` (id, label)."""
    queries: list[dict[str, Any]] = []
    for query_id, (name, operation) in metrics.items():
        dimensions = _dim("TableName", "LedgerTableName")
        if operation:
            dimensions.append({"Name": "Operation", "Value": operation})
        stat = {"Metric": _metric("AWS/DynamoDB", name, dimensions), "Period": 60, "Stat": "Sum"}
        queries.append({"Id": query_id, "ReturnData": False, "MetricStat": stat})
    total = " + ".join(f"FILL({query_id}, 0)" for query_id in metrics)
    queries.append({"Id": result[0], "Label": result[1], "Expression": total, "ReturnData": True})
    return {"Metrics": queries}


def function_alarms() -> dict[str, dict[str, Any]]:
    alarms = {}
    for fn in FUNCTIONS:
        dimensions = _dim("FunctionName", fn.parameter)
        errors = _metric("AWS/Lambda", "Errors", dimensions)
        alarms[fn.errors_id or f"{fn.key}ErrorsAlarm"] = _alarm(
            fn.errors, errors, EvaluationPeriods=fn.error_periods
        )
        throttles = _metric("AWS/Lambda", "Throttles", dimensions)
        alarms[f"{fn.key}ThrottlesAlarm"] = _alarm(fn.throttles, throttles)
    # The stream readers: the projector must keep up (reports read its entries); alerts may
    # lag more, but then alerts and auto top-ups are late.
    lag = {"Statistic": "Maximum", "Unit": "Milliseconds"}
    alarms["LedgerProjectorIteratorAgeAlarm"] = _alarm(
        "Ledger projector is more than 60 s behind the stream.",
        _metric("AWS/Lambda", "IteratorAge", _dim("FunctionName", "LedgerProjectorFunctionName")),
        **lag,
        EvaluationPeriods=3,
        DatapointsToAlarm=2,
        Threshold=60_000,
    )
    alarms["AlertsIteratorAgeAlarm"] = _alarm(
        "The alerts function is more than 5 minutes behind the table's stream (a failing "
        "record holds its shard): alerts and auto top-ups are late.",
        _metric("AWS/Lambda", "IteratorAge", _dim("FunctionName", "AlertsFunctionName")),
        **lag,
        EvaluationPeriods=5,
        DatapointsToAlarm=3,
        Threshold=300_000,
    )
    return alarms


def queue_alarms() -> dict[str, dict[str, Any]]:
    alarms = {}
    for queue in QUEUES:
        if queue.depth:
            depth = "ApproximateNumberOfMessagesVisible"
            metric = _metric("AWS/SQS", depth, _dim("QueueName", queue.parameter))
            alarms[f"{queue.key}Alarm"] = _alarm(queue.depth, metric, Statistic="Maximum")
    age = _metric("AWS/SQS", "ApproximateAgeOfOldestMessage", _dim("QueueName", "ResetQueueName"))
    alarms["ResetQueueAgeAlarm"] = _alarm(
        "A wallet has waited more than 15 minutes in the reset queue: resets are falling "
        "behind (the worker failing, throttled or too slow).",
        age,
        Statistic="Maximum",
        Period=300,
        Threshold=900,
    )
    return alarms


SYSTEM_ERROR_OPERATIONS = {
    "getitem": "GetItem",
    "putitem": "PutItem",
    "updateitem": "UpdateItem",
    "query": "Query",
    "transactwrite": "TransactWriteItems",
    "batchwrite": "BatchWriteItem",
}


def api_and_table_alarms() -> dict[str, dict[str, Any]]:
    api = _dim("ApiId", "HttpApiId") + _dim("Stage", "Stage")
    table = _dim("TableName", "LedgerTableName")
    throttles = {"reads": ("ReadThrottleEvents", ""), "writes": ("WriteThrottleEvents", "")}
    errors = {i: ("SystemErrors", op) for i, op in SYSTEM_ERROR_OPERATIONS.items()}
    return {
        "HttpApi5xxAlarm": _alarm(
            "HTTP API returned 5xx responses.",
            _metric("AWS/ApiGateway", "5xx", api),
            EvaluationPeriods=5,
            DatapointsToAlarm=2,
        ),
        "LedgerTableThrottlesAlarm": _alarm(
            "Requests to the ledger table were throttled.",
            _table_sum(("throttles", "Throttled requests"), throttles),
        ),
        "LedgerTableSystemErrorsAlarm": _alarm(
            "DynamoDB returned system errors (HTTP 500) for the ledger table.",
            _table_sum(("systemerrors", "System errors"), errors),
        ),
        "LedgerTableTransactionConflictsAlarm": _alarm(
            "Sustained transaction conflicts on the ledger table (more than one a second for 5 "
            "minutes): hot wallets written faster than they can take; callers see 503 "
            "contention once the store's retries run out.",
            _metric("AWS/DynamoDB", "TransactionConflict", table),
            Period=300,
            Threshold=300,
        ),
    }


def payment_alarms() -> dict[str, dict[str, Any]]:
    """On the EMF metrics the Stripe webhook emits (its handler answers errors itself)."""
    return {
        "StripeWebhookErrorsAlarm": _alarm(
            "The Stripe webhook answered 5xx (an error, or a table too busy): Stripe retries, "
            "but those payments wait uncredited meanwhile. (The handler answers errors itself, "
            "so Lambda's Errors metric stays 0.)",
            _metric(NAMESPACE, "WebhookErrors", SERVICE),
        ),
        "StripeWebhookSignatureFailuresAlarm": _alarm(
            "Many webhook deliveries failed signature verification: forged requests, or the "
            "signing secret no longer matches Stripe's.",
            _metric(NAMESPACE, "WebhookSignatureFailures", SERVICE),
            Period=300,
            Threshold=10,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        ),
        # Nothing clears it but an operator: no OK notification.
        "PaymentsForUnknownWalletsAlarm": _alarm(
            "A payment arrived for a wallet that does not exist: recorded, not credited; an "
            "operator must decide (refund or credit by hand).",
            _metric(NAMESPACE, "PaymentsForUnknownWallets", SERVICE),
            Period=300,
            ok=False,
        ),
    }


def alarms() -> dict[str, dict[str, Any]]:
    """Every alarm, by logical id."""
    return api_and_table_alarms() | function_alarms() | queue_alarms() | payment_alarms()
