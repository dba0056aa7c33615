"""The operators' CloudWatch dashboard, as the JSON body of ``monitoring/template.yaml``'s
``Dashboard`` (an ``Fn::Sub`` text: ``${...}`` are that template's parameters)."""

from __future__ import annotations

import json
from typing import Any

from devtools.monitoring_alarms import FUNCTIONS, NAMESPACE, QUEUES


def _line(namespace: str, name: str, *dimensions: str, label: str = "") -> list[Any]:
    return [namespace, name, *dimensions, *([{"label": label}] if label else [])]


def _business(title: str, *lines: tuple[str, str]) -> dict[str, Any]:
    """EMF metrics (metric, label) with Powertools' service dimension, per 5 minutes."""
    metrics = [_line(NAMESPACE, m, "service", "credit-meter", label=lbl) for m, lbl in lines]
    return {"title": title, "stat": "Sum", "period": 300, "metrics": metrics}


def _ops(title: str, stat: str, metrics: list[list[Any]]) -> dict[str, Any]:
    return {"title": title, "stat": stat, "period": 60, "metrics": metrics}


def _per_function(metric: str) -> list[list[Any]]:
    return [
        _line("AWS/Lambda", metric, "FunctionName", f"${{{fn.parameter}}}", label=fn.key)
        for fn in FUNCTIONS
    ]


API = ("ApiId", "${HttpApiId}", "Stage", "${Stage}")
TABLE = ("TableName", "${LedgerTableName}")


def _business_row() -> list[Any]:
    return [
        _business("Credits charged", ("CreditsCharged", "")),
        _business(
            "Holds and charges refused (402 credits, 403 limits)",
            ("HoldsRefused", ""),
            ("LimitRefusals", ""),
        ),
        _business(
            "Alerts fired",
            ("AlertsFired", "all"),
            ("AlertsThresholdCrossed", "threshold crossed"),
            ("AlertsDepleted", "depleted"),
            ("AlertsRestored", "restored"),
            ("AlertsLimitReached", "limit reached"),
        ),
        _business(
            "Top-ups",
            ("TopupsCredited", "credited"),
            ("AutoTopupsStarted", "auto top-ups started"),
            ("AutoTopupsDeclined", "auto top-ups declined"),
            ("PaymentsForUnknownWallets", "for unknown wallets"),
        ),
    ]


def _api_row() -> list[Any]:
    lag = [
        _line("AWS/Lambda", "IteratorAge", "FunctionName", f"${{{fn}FunctionName}}", label=lbl)
        for fn, lbl in (("LedgerProjector", "ledger projector"), ("Alerts", "alerts"))
    ]
    responses = [
        _line("AWS/ApiGateway", "5xx", *API),
        _line("AWS/ApiGateway", "4xx", *API),
        _line("AWS/ApiGateway", "Count", *API, label="requests"),
    ]
    latency = [_line("AWS/ApiGateway", m, *API) for m in ("Latency", "IntegrationLatency")]
    return [
        _ops("HTTP API responses", "Sum", responses),
        _ops("HTTP API latency (p99)", "p99", latency),
        _ops("Stream consumers' iterator age (ms)", "Maximum", lag),
    ]


def _functions_row() -> list[Any]:
    depth = "ApproximateNumberOfMessagesVisible"
    dead_letters = [
        _line("AWS/SQS", depth, "QueueName", f"${{{q.parameter}}}", label=q.key)
        for q in QUEUES
        if q.depth
    ]
    return [
        _ops("Lambda errors", "Sum", _per_function("Errors")),
        _ops("Lambda throttles", "Sum", _per_function("Throttles")),
        _ops("Dead-letter and on-failure queues (messages)", "Maximum", dead_letters),
    ]


def _table_row() -> list[Any]:
    def lines(*metrics: str) -> list[list[Any]]:
        return [_line("AWS/DynamoDB", m, *TABLE) for m in metrics]

    return [
        _ops("DynamoDB throttles", "Sum", lines("ReadThrottleEvents", "WriteThrottleEvents")),
        _ops("DynamoDB transaction conflicts", "Sum", lines("TransactionConflict")),
        _ops(
            "DynamoDB capacity consumed",
            "Sum",
            lines("ConsumedWriteCapacityUnits", "ConsumedReadCapacityUnits"),
        ),
    ]


def dashboard_rows() -> list[list[Any]]:
    """Rows of widgets, each a heading (str) or a metric widget's properties."""
    return [
        ["## Business (namespace CreditMeter, per 5 minutes)"],
        _business_row(),
        ["## Operations"],
        _api_row(),
        _functions_row(),
        _table_row(),
    ]


def dashboard_body() -> str:
    """The dashboard's JSON, laid out row by row on CloudWatch's 24-column grid."""
    widgets: list[dict[str, Any]] = []
    y = 0
    for row in dashboard_rows():
        width = 24 // len(row)
        height = 1 if isinstance(row[0], str) else 6
        for column, item in enumerate(row):
            place = {"x": column * width, "y": y, "width": width, "height": height}
            if isinstance(item, str):
                widgets.append({"type": "text", **place, "properties": {"markdown": item}})
                continue
            properties = {"title": item["title"], "region": "${AWS::Region}", "view": "timeSeries"}
            properties |= {k: v for k, v in item.items() if k != "title"}
            widgets.append({"type": "metric", **place, "properties": properties})
        y += height
    return json.dumps({"widgets": widgets}, indent=2) + "\n"
