"""The monitoring stack (``monitoring/template.yaml``, nested in ``template.yaml`` as
``Monitoring``): generated, complete, wired to what it watches, and nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

from devtools import monitoring, table

# Every alarm's metrics and every dashboard widget's lines, by metric and dimensions (values
# named by the main template's logical ids), as they were before monitoring had its own stack.
ALARMED = {
    "AWS/ApiGateway 5xx": ["ApiId=HttpApi,Stage=Stage"],
    "AWS/DynamoDB ReadThrottleEvents": ["TableName=LedgerTable"],
    "AWS/DynamoDB SystemErrors": [
        "TableName=LedgerTable,Operation=BatchWriteItem",
        "TableName=LedgerTable,Operation=GetItem",
        "TableName=LedgerTable,Operation=PutItem",
        "TableName=LedgerTable,Operation=Query",
        "TableName=LedgerTable,Operation=TransactWriteItems",
        "TableName=LedgerTable,Operation=UpdateItem",
    ],
    "AWS/DynamoDB TransactionConflict": ["TableName=LedgerTable"],
    "AWS/DynamoDB WriteThrottleEvents": ["TableName=LedgerTable"],
    "AWS/Lambda Errors": [
        "FunctionName=AlertsFunction",
        "FunctionName=ByokApiFunction",
        "FunctionName=ByokRevealFunction",
        "FunctionName=HoldSweeperFunction",
        "FunctionName=LedgerProjectorFunction",
        "FunctionName=MeteringApiFunction",
        "FunctionName=MonthlyResetFunction",
        "FunctionName=ResetDispatcherFunction",
        "FunctionName=StripeWebhookFunction",
    ],
    "AWS/Lambda IteratorAge": [
        "FunctionName=AlertsFunction",
        "FunctionName=LedgerProjectorFunction",
    ],
    "AWS/Lambda Throttles": [
        "FunctionName=AlertsFunction",
        "FunctionName=ByokApiFunction",
        "FunctionName=ByokRevealFunction",
        "FunctionName=HoldSweeperFunction",
        "FunctionName=LedgerProjectorFunction",
        "FunctionName=MeteringApiFunction",
        "FunctionName=MonthlyResetFunction",
        "FunctionName=ResetDispatcherFunction",
        "FunctionName=StripeWebhookFunction",
    ],
    "AWS/SQS ApproximateAgeOfOldestMessage": ["QueueName=ResetQueue.QueueName"],
    "AWS/SQS ApproximateNumberOfMessagesVisible": [
        "QueueName=AlertsDLQ.QueueName",
        "QueueName=HoldSweeperDLQ.QueueName",
        "QueueName=LedgerProjectorDLQ.QueueName",
        "QueueName=ResetDLQ.QueueName",
        "QueueName=ResetDispatchDLQ.QueueName",
    ],
    "CreditMeter PaymentsForUnknownWallets": ["service=credit-meter"],
    "CreditMeter WebhookErrors": ["service=credit-meter"],
    "CreditMeter WebhookSignatureFailures": ["service=credit-meter"],
}
DASHBOARD = {
    "## Business (namespace CreditMeter, per 5 minutes)": [],
    "Credits charged": ["CreditMeter CreditsCharged service=credit-meter"],
    "Holds and charges refused (402 credits, 403 limits)": [
        "CreditMeter HoldsRefused service=credit-meter",
        "CreditMeter LimitRefusals service=credit-meter",
    ],
    "Alerts fired": [
        "CreditMeter AlertsFired service=credit-meter",
        "CreditMeter AlertsThresholdCrossed service=credit-meter",
        "CreditMeter AlertsDepleted service=credit-meter",
        "CreditMeter AlertsRestored service=credit-meter",
        "CreditMeter AlertsLimitReached service=credit-meter",
    ],
    "Top-ups": [
        "CreditMeter TopupsCredited service=credit-meter",
        "CreditMeter AutoTopupsStarted service=credit-meter",
        "CreditMeter AutoTopupsDeclined service=credit-meter",
        "CreditMeter PaymentsForUnknownWallets service=credit-meter",
    ],
    "## Operations": [],
    "HTTP API responses": [
        "AWS/ApiGateway 5xx ApiId=HttpApi,Stage=Stage",
        "AWS/ApiGateway 4xx ApiId=HttpApi,Stage=Stage",
        "AWS/ApiGateway Count ApiId=HttpApi,Stage=Stage",
    ],
    "HTTP API latency (p99)": [
        "AWS/ApiGateway Latency ApiId=HttpApi,Stage=Stage",
        "AWS/ApiGateway IntegrationLatency ApiId=HttpApi,Stage=Stage",
    ],
    "Stream consumers' iterator age (ms)": [
        "AWS/Lambda IteratorAge FunctionName=LedgerProjectorFunction",
        "AWS/Lambda IteratorAge FunctionName=AlertsFunction",
    ],
    "Lambda errors": [
        "AWS/Lambda Errors FunctionName=MeteringApiFunction",
        "AWS/Lambda Errors FunctionName=StripeWebhookFunction",
        "AWS/Lambda Errors FunctionName=ByokApiFunction",
        "AWS/Lambda Errors FunctionName=ByokRevealFunction",
        "AWS/Lambda Errors FunctionName=LedgerProjectorFunction",
        "AWS/Lambda Errors FunctionName=AlertsFunction",
        "AWS/Lambda Errors FunctionName=HoldSweeperFunction",
        "AWS/Lambda Errors FunctionName=ResetDispatcherFunction",
        "AWS/Lambda Errors FunctionName=MonthlyResetFunction",
    ],
    "Lambda throttles": [
        "AWS/Lambda Throttles FunctionName=MeteringApiFunction",
        "AWS/Lambda Throttles FunctionName=StripeWebhookFunction",
        "AWS/Lambda Throttles FunctionName=ByokApiFunction",
        "AWS/Lambda Throttles FunctionName=ByokRevealFunction",
        "AWS/Lambda Throttles FunctionName=LedgerProjectorFunction",
        "AWS/Lambda Throttles FunctionName=AlertsFunction",
        "AWS/Lambda Throttles FunctionName=HoldSweeperFunction",
        "AWS/Lambda Throttles FunctionName=ResetDispatcherFunction",
        "AWS/Lambda Throttles FunctionName=MonthlyResetFunction",
    ],
    "Dead-letter and on-failure queues (messages)": [
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=LedgerProjectorDLQ.QueueName",
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=AlertsDLQ.QueueName",
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=HoldSweeperDLQ.QueueName",
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=ResetDispatchDLQ.QueueName",
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=ResetDLQ.QueueName",
    ],
    "DynamoDB throttles": [
        "AWS/DynamoDB ReadThrottleEvents TableName=LedgerTable",
        "AWS/DynamoDB WriteThrottleEvents TableName=LedgerTable",
    ],
    "DynamoDB transaction conflicts": ["AWS/DynamoDB TransactionConflict TableName=LedgerTable"],
    "DynamoDB capacity consumed": [
        "AWS/DynamoDB ConsumedWriteCapacityUnits TableName=LedgerTable",
        "AWS/DynamoDB ConsumedReadCapacityUnits TableName=LedgerTable",
    ],
}
ALARMS = [
    "AlertsDLQAlarm",
    "AlertsErrorsAlarm",
    "AlertsIteratorAgeAlarm",
    "AlertsThrottlesAlarm",
    "ByokApiErrorsAlarm",
    "ByokApiThrottlesAlarm",
    "ByokRevealErrorsAlarm",
    "ByokRevealThrottlesAlarm",
    "HoldSweeperDLQAlarm",
    "HoldSweeperErrorsAlarm",
    "HoldSweeperThrottlesAlarm",
    "HttpApi5xxAlarm",
    "LedgerProjectorDLQAlarm",
    "LedgerProjectorErrorsAlarm",
    "LedgerProjectorIteratorAgeAlarm",
    "LedgerProjectorThrottlesAlarm",
    "LedgerTableSystemErrorsAlarm",
    "LedgerTableThrottlesAlarm",
    "LedgerTableTransactionConflictsAlarm",
    "MeteringApiErrorsAlarm",
    "MeteringApiThrottlesAlarm",
    "MonthlyResetErrorsAlarm",
    "MonthlyResetThrottlesAlarm",
    "PaymentsForUnknownWalletsAlarm",
    "ResetDLQAlarm",
    "ResetDispatchDLQAlarm",
    "ResetDispatcherErrorsAlarm",
    "ResetDispatcherThrottlesAlarm",
    "ResetQueueAgeAlarm",
    "StripeWebhookErrorsAlarm",
    "StripeWebhookFunctionErrorsAlarm",
    "StripeWebhookSignatureFailuresAlarm",
    "StripeWebhookThrottlesAlarm",
]


def _stack() -> dict[str, Any]:
    return monitoring.load_stack()


def _name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if set(value) == {"Ref"}:
        return str(value["Ref"])
    if set(value) == {"Fn::GetAtt"}:
        return ".".join(value["Fn::GetAtt"])
    raise AssertionError(f"not a name: {value!r}")


def _alarmed(resources: dict[str, Any]) -> dict[str, list[str]]:
    """Namespace and metric -> the dimensions of each alarm (or alarm query) on it."""
    found: dict[str, list[str]] = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        queries = [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]
        for metric in queries or [props]:
            dims = ",".join(f"{d['Name']}={_name(d['Value'])}" for d in metric["Dimensions"])
            found.setdefault(f"{metric['Namespace']} {metric['MetricName']}", []).append(dims)
    return {key: sorted(found[key]) for key in sorted(found)}


def _dashboard(resources: dict[str, Any]) -> dict[str, list[str]]:
    """Widget title (a text widget's markdown) -> its lines: namespace, metric, dimensions."""
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    found: dict[str, list[str]] = {}
    for widget in json.loads(body)["widgets"]:
        props = widget["properties"]
        if widget["type"] == "text":
            found[props["markdown"]] = []
            continue
        lines = found[props["title"]] = []
        for line in props["metrics"]:
            names = [re.sub(r"^\$\{(.*)\}$", r"\1", x) for x in line if isinstance(x, str)]
            dims = ",".join(f"{k}={v}" for k, v in zip(names[2::2], names[3::2], strict=True))
            lines.append(f"{names[0]} {names[1]} {dims}")
    return found


def test_the_template_is_what_the_generator_writes() -> None:
    assert monitoring.TEMPLATE.read_text(encoding="utf-8") == monitoring.render(), (
        "monitoring/template.yaml is out of date: run python -m devtools.monitoring"
    )


def test_every_alarm_and_dashboard_line_is_kept() -> None:
    resources = _stack()["Resources"]
    assert sorted(n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm") == (
        ALARMS
    )
    assert _alarmed(resources) == ALARMED
    assert list(_dashboard(resources).items()) == list(DASHBOARD.items())  # in order


def test_the_main_template_passes_exactly_the_nested_parameters() -> None:
    main = table.load_template(table.DEFAULT_TEMPLATE)
    app = main["Resources"]["Monitoring"]
    assert app["Type"] == "AWS::Serverless::Application"
    assert app["Properties"]["Location"] == "monitoring/template.yaml"
    passed = app["Properties"]["Parameters"]
    assert passed == monitoring.parameters_passed()
    declared = table.load_template(monitoring.TEMPLATE)["Parameters"]
    assert set(passed) == set(declared)  # none missing (a deploy would fail), none unknown
    # ... and each names a resource or parameter of the main template.
    known = set(main["Resources"]) | set(main["Parameters"])
    for value in passed.values():
        if "Fn::Sub" not in value:
            assert _name(value).split(".")[0] in known, value


def test_monitoring_lives_only_in_the_nested_stack() -> None:
    main = table.load_template(table.DEFAULT_TEMPLATE)["Resources"]
    moved = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"}
    assert not [n for n, r in main.items() if r["Type"] in moved]
    nested = table.load_template(monitoring.TEMPLATE)["Resources"]
    # No functions, roles or policies there: least privilege is all in the main template.
    assert {r["Type"] for r in nested.values()} == moved | {
        "AWS::SNS::Topic",
        "AWS::SNS::Subscription",
    }


def test_operators_topic_optional_email_and_outputs() -> None:
    main = table.load_template(table.DEFAULT_TEMPLATE)
    assert main["Parameters"]["OperatorsEmail"]["Default"] == ""
    assert (
        main["Parameters"]["OperatorsEmail"]["AllowedPattern"]
        == (main["Parameters"]["AlertsEmail"]["AllowedPattern"])
    )
    nested = table.load_template(monitoring.TEMPLATE)
    assert nested["Conditions"]["HasOperatorsEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "OperatorsEmail"}, ""]}]
    }
    subscription = nested["Resources"]["OperatorsEmailSubscription"]
    assert subscription["Condition"] == "HasOperatorsEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "OperatorsTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "OperatorsEmail"},
    }
    assert nested["Outputs"]["OperatorsTopicArn"]["Value"] == {"Ref": "OperatorsTopic"}
    outputs = main["Outputs"]
    assert outputs["OperatorsTopicArn"]["Value"] == {
        "Fn::GetAtt": ["Monitoring", "Outputs.OperatorsTopicArn"]
    }
    assert "${Monitoring.Outputs.DashboardName}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


def test_the_dashboard_is_not_named_as_the_main_stacks_was() -> None:
    # Moved under the old name, the old dashboard's deletion would take the new one with it.
    dashboard = _stack()["Resources"]["Dashboard"]["Properties"]
    assert dashboard["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-monitoring"}
