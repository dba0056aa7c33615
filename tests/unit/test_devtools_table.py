"""template.yaml is the schema's single source of truth; devtools.table reads it."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools import monitoring, table

TEMPLATE = table.DEFAULT_TEMPLATE


def _resources() -> dict[str, Any]:
    """The stack's resources: the main template's and its nested monitoring template's."""
    resources: dict[str, Any] = monitoring.load_stack(TEMPLATE)["Resources"]
    return resources


def test_ledger_table_definition() -> None:
    definition = table.table_definition_from_template()

    assert definition == {
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "sweep_shard", "AttributeType": "S"},
            {"AttributeName": "sweep_at", "AttributeType": "N"},
            {"AttributeName": "due_shard", "AttributeType": "S"},
            {"AttributeName": "due_at", "AttributeType": "N"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "SweepIndex",
                "KeySchema": [
                    {"AttributeName": "sweep_shard", "KeyType": "HASH"},
                    {"AttributeName": "sweep_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "DueIndex",
                "KeySchema": [
                    {"AttributeName": "due_shard", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    assert table.ttl_attribute_from_template() == "ttl"


def test_loader_accepts_cloudformation_short_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Conditions:
              IsProd: !Equals [!Ref Stage, prod]
            Resources:
              T:
                Type: AWS::DynamoDB::Table
                Properties:
                  TableName: !Sub "${AWS::StackName}-t"
                  KeySchema: [{AttributeName: id, KeyType: HASH}]
                  AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
                  BillingMode: PAY_PER_REQUEST
                  Tags:
                    - Key: a
                      Value: !GetAtt Other.Arn
                    - Key: b
                      Value: !If [IsProd, !Select [0, !Split [",", "x,y"]], !Ref AWS::NoValue]
                    - Key: c
                      Value: !Join ["-", [!ImportValue shared, !FindInMap [M, K, V]]]
                    - Key: d
                      Value: !Base64 {"Fn::Sub": "x"}
            """
        )
    )
    data = table.load_template(path)
    props = data["Resources"]["T"]["Properties"]
    assert data["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    assert props["TableName"] == {"Fn::Sub": "${AWS::StackName}-t"}
    assert props["Tags"][0]["Value"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert props["Tags"][1]["Value"]["Fn::If"][0] == "IsProd"
    assert props["Tags"][2]["Value"]["Fn::Join"][1][0] == {"Fn::ImportValue": "shared"}
    assert props["Tags"][3]["Value"] == {"Fn::Base64": {"Fn::Sub": "x"}}
    # Deployment-only properties (name, tags) do not reach create_table.
    assert table.table_definition_from_template(path, "T") == {
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    assert table.ttl_attribute_from_template(path, "T") is None


def test_secondary_indexes_keep_only_create_table_keys(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Resources:
              T:
                Type: AWS::DynamoDB::Table
                Properties:
                  BillingMode: PAY_PER_REQUEST
                  KeySchema:
                    - {AttributeName: pk, KeyType: HASH}
                    - {AttributeName: sk, KeyType: RANGE}
                  AttributeDefinitions:
                    - {AttributeName: pk, AttributeType: S}
                    - {AttributeName: sk, AttributeType: S}
                    - {AttributeName: g, AttributeType: S}
                  GlobalSecondaryIndexes:
                    - IndexName: by-g
                      KeySchema: [{AttributeName: g, KeyType: HASH}]
                      Projection: {ProjectionType: KEYS_ONLY}
                      ContributorInsightsSpecification: {Enabled: true}
                  LocalSecondaryIndexes:
                    - IndexName: by-pk-g
                      KeySchema:
                        - {AttributeName: pk, KeyType: HASH}
                        - {AttributeName: g, KeyType: RANGE}
                      Projection: {ProjectionType: ALL}
                  PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
                  SSESpecification: {SSEEnabled: true}
                  TimeToLiveSpecification: {AttributeName: expires, Enabled: true}
            """
        )
    )
    definition = table.table_definition_from_template(path, "T")
    assert definition["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "by-g",
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]
    assert definition["LocalSecondaryIndexes"][0]["IndexName"] == "by-pk-g"
    for dropped in (
        "PointInTimeRecoverySpecification",
        "SSESpecification",
        "TimeToLiveSpecification",
    ):
        assert dropped not in definition
    assert table.ttl_attribute_from_template(path, "T") == "expires"


def test_intrinsics_in_the_schema_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Resources:
              T:
                Type: AWS::DynamoDB::Table
                Properties:
                  BillingMode: !If [IsProd, PROVISIONED, PAY_PER_REQUEST]
                  KeySchema: [{AttributeName: id, KeyType: HASH}]
                  AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
              Q:
                Type: AWS::SQS::Queue
            """
        )
    )
    with pytest.raises(ValueError, match="Fn::If"):
        table.table_definition_from_template(path, "T")
    with pytest.raises(ValueError, match="not AWS::DynamoDB::Table"):
        table.table_definition_from_template(path, "Q")
    with pytest.raises(KeyError):
        table.table_definition_from_template(path, "Missing")


def test_moto_table_matches_the_template(moto_table: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    description = client.describe_table(TableName=moto_table)["Table"]
    assert description["KeySchema"] == table.table_definition_from_template()["KeySchema"]
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = client.describe_time_to_live(TableName=moto_table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


# --------------------------------------------------------------------------
# Guards on the deployment template itself
# --------------------------------------------------------------------------

EXPECTED_ROUTES = {
    ("PUT", "/v1/wallets/{wallet_id}"),
    ("GET", "/v1/wallets/{wallet_id}"),
    ("PUT", "/v1/wallets/{wallet_id}/bypass"),
    ("POST", "/v1/wallets/{wallet_id}/reservations"),
    ("POST", "/v1/wallets/{wallet_id}/reservations/{reservation_id}/commit"),
    ("POST", "/v1/wallets/{wallet_id}/reservations/{reservation_id}/release"),
    ("POST", "/v1/wallets/{wallet_id}/charges"),
    ("POST", "/v1/wallets/{wallet_id}/quote"),
    ("POST", "/v1/wallets/{wallet_id}/grants"),
    ("GET", "/v1/wallets/{wallet_id}/grants"),
    ("POST", "/v1/wallets/{wallet_id}/grants/{grant_id}/void"),
    ("POST", "/v1/wallets/{wallet_id}/adjustments"),
    ("POST", "/v1/wallets/{wallet_id}/transfers"),
    ("POST", "/v1/promo-codes"),
    ("POST", "/v1/wallets/{wallet_id}/redeem"),
    ("POST", "/v1/wallets/{wallet_id}/referral"),
    ("GET", "/v1/wallets/{wallet_id}/transactions"),
    ("GET", "/v1/prices"),
    ("GET", "/v1/test-clock"),  # test mode only: a 404 elsewhere
    ("POST", "/v1/test-clock"),
    ("GET", "/v1/topups/offers"),
    ("POST", "/v1/wallets/{wallet_id}/checkout"),
    ("GET", "/v1/wallets/{wallet_id}/payments"),
    ("GET", "/v1/wallets/{wallet_id}/payments/{payment_id}/invoice"),
    ("PUT", "/v1/wallets/{wallet_id}/auto-topup"),
    ("GET", "/v1/wallets/{wallet_id}/auto-topup"),
    ("PUT", "/v1/wallets/{wallet_id}/limits"),
    ("GET", "/v1/wallets/{wallet_id}/limits"),
    ("PUT", "/v1/wallets/{wallet_id}/alerts"),
    ("GET", "/v1/wallets/{wallet_id}/alerts"),
    ("GET", "/v1/wallets/{wallet_id}/members"),
    ("PUT", "/v1/wallets/{wallet_id}/members/{member_id}/budget"),
    ("GET", "/v1/wallets/{wallet_id}/members/{member_id}/budget"),
    ("GET", "/v1/wallets/{wallet_id}/transactions.csv"),
    ("GET", "/v1/wallets/{wallet_id}/usage/summary"),
    ("GET", "/v1/wallets/{wallet_id}/usage"),
    ("GET", "/v1/orgs/{org_id}/usage"),
}


def test_every_route_is_wired_to_the_api_function(metering_app: Any) -> None:
    events = _resources()["MeteringApiFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()}
    assert routes == EXPECTED_ROUTES
    # ... and they are exactly the handler's: a route added to one and not the other fails.
    resolver = metering_app.app
    handled = {
        (r.method.upper(), re.sub(r"<(\w+)>", r"{\1}", r.path))
        for r in [*resolver._static_routes, *resolver._dynamic_routes]
    }
    assert routes == handled
    assert all(e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in events.values())


def _statements(function_id: str) -> list[dict[str, Any]]:
    """A function's inline policy statements, those granted only under a condition
    (``!If [Condition, statement, !Ref AWS::NoValue]``) included as granted."""
    found = []
    for policy in _resources()[function_id]["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            if "Fn::If" in statement:
                _, statement, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
            found.append(statement)
    return found


def _policy_actions(function_id: str) -> dict[str, set[str]]:
    """Actions per resource (as repr of the intrinsic) in a function's inline policies."""
    actions: dict[str, set[str]] = {}
    for statement in _statements(function_id):
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        listed = [listed] if isinstance(listed, str) else listed
        actions.setdefault(repr(statement["Resource"]), set()).update(listed)
    return actions


TABLE = repr({"Fn::GetAtt": ["LedgerTable", "Arn"]})
STREAM = repr({"Fn::GetAtt": ["LedgerTable", "StreamArn"]})
API_KEY = repr({"Ref": "StripeApiKeySecretArn"})
WEBHOOK_SECRET = repr({"Ref": "StripeWebhookSecretArn"})
TEST_MODE_INDEXES = repr(
    [
        {"Fn::Sub": "${LedgerTable.Arn}/index/SweepIndex"},
        {"Fn::Sub": "${LedgerTable.Arn}/index/DueIndex"},
    ]
)


def test_api_function_is_least_privilege() -> None:
    assert _policy_actions("MeteringApiFunction") == {
        TABLE: {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",  # usage reports: a wallet's or an org's rollups
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:ConditionCheckItem",  # a wallet joining an org copies its BYOK flags
        },
        API_KEY: {"secretsmanager:GetSecretValue"},  # checkouts and invoice links
        # test mode only (TestModeOn): advancing the test clock runs the sweep and the resets
        TEST_MODE_INDEXES: {"dynamodb:Query"},
    }


def test_stripe_webhook_is_its_own_least_privilege_function() -> None:
    webhook = _resources()["StripeWebhookFunction"]["Properties"]
    (event,) = webhook["Events"].values()
    assert event["Type"] == "HttpApi"
    assert (event["Properties"]["Method"], event["Properties"]["Path"]) == (
        "POST",
        "/v1/webhooks/stripe",
    )
    assert webhook["Environment"]["Variables"] == {
        "STRIPE_WEBHOOK_SECRET_ARN": {"Ref": "StripeWebhookSecretArn"}
    }
    # It reads only the signing secret, never the API key; no queries, no deletes.
    assert _policy_actions("StripeWebhookFunction") == {
        TABLE: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        WEBHOOK_SECRET: {"secretsmanager:GetSecretValue"},
    }
    alarms = {
        r["Properties"].get("MetricName"): r["Properties"]
        for r in _resources().values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and (r["Properties"].get("Dimensions") or [{}])[0].get("Value")
        in ({"Ref": "StripeWebhookFunction"}, "credit-meter")
    }
    assert {"WebhookErrors", "WebhookSignatureFailures", "PaymentsForUnknownWallets"} <= set(alarms)


def _stream_consumers() -> dict[str, dict[str, Any]]:
    """The functions reading the table's stream: their DynamoDB event's properties."""
    found = {}
    for name, resource in _resources().items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "DynamoDB":
                assert event["Properties"]["Stream"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
                found[name] = event["Properties"]
    return found


def test_the_stream_has_two_readers_the_projector_and_alerts() -> None:
    # A DynamoDB stream shard throttles beyond two concurrent readers.
    assert set(_stream_consumers()) == {"LedgerProjectorFunction", "AlertsFunction"}
    assert "AutoTopupFunction" not in _resources()


def test_alerts_function_reads_wallet_writes_with_bounded_retries() -> None:
    fn = _resources()["AlertsFunction"]["Properties"]
    assert (fn["CodeUri"], fn["Handler"]) == ("functions/alerts/", "app.handler")
    assert fn["Environment"]["Variables"] == {
        "EVENT_BUS_NAME": {"Ref": "EventBus"},
        "ALERTS_TOPIC_ARN": {"Ref": "AlertsTopic"},
        "STRIPE_API_KEY_ARN": {"Ref": "StripeApiKeySecretArn"},
    }
    stream = _stream_consumers()["AlertsFunction"]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 < stream["MaximumRetryAttempts"] <= 10  # bounded, unlike the projector's
    assert 0 < stream["MaximumRecordAgeInSeconds"] <= 3600
    (only,) = stream["FilterCriteria"]["Filters"]
    # Every wallet write (no longer only those with auto top-up on): alerts need them all.
    assert json.loads(only["Pattern"]) == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"Keys": {"sk": {"S": ["W"]}}},
    }
    assert stream["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["AlertsDLQ", "Arn"]},
    }
    assert _policy_actions("AlertsFunction") == {
        # auto top-up's state; the alerts' idempotency records (claim, complete, release)
        TABLE: {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        STREAM: {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
        repr({"Fn::GetAtt": ["EventBus", "Arn"]}): {"events:PutEvents"},
        repr({"Ref": "AlertsTopic"}): {"sns:Publish"},
        repr({"Fn::GetAtt": ["TopicsKey", "Arn"]}): {"kms:GenerateDataKey", "kms:Decrypt"},
        API_KEY: {"secretsmanager:GetSecretValue"},
        repr({"Fn::GetAtt": ["AlertsDLQ", "Arn"]}): {"sqs:SendMessage"},
    }
    # Put and Delete (the claims) only in the claims' partition, never on wallets or records.
    statements = [
        st
        for st in _statements("AlertsFunction")
        if {"dynamodb:PutItem", "dynamodb:DeleteItem"} & set(st["Action"])
    ]
    assert len(statements) == 1
    assert set(statements[0]["Action"]) == {"dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert statements[0]["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["IDEMPOTENCY#alerts"]}
    }


def test_alarm_topics_use_a_key_cloudwatch_may_use() -> None:
    # CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key.
    resources = _resources()
    for name in ("OperatorsTopic", "AlertsTopic"):
        assert resources[name]["Properties"]["KmsMasterKeyId"] == {"Ref": "TopicsKey"}
    key = resources["TopicsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [
        st
        for st in key["KeyPolicy"]["Statement"]
        if st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_alerts_bus_topic_and_optional_email() -> None:
    template = table.load_template(TEMPLATE)
    resources = template["Resources"]
    assert resources["EventBus"]["Type"] == "AWS::Events::EventBus"
    assert resources["EventBus"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-alerts"}
    topic = resources["AlertsTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "TopicsKey"}
    assert template["Parameters"]["AlertsEmail"]["Default"] == ""
    assert template["Conditions"]["HasAlertsEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlertsEmail"}, ""]}]
    }
    subscription = resources["AlertsEmailSubscription"]
    assert (subscription["Type"], subscription["Condition"]) == (
        "AWS::SNS::Subscription",
        "HasAlertsEmail",
    )
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlertsTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlertsEmail"},
    }
    outputs = template["Outputs"]
    assert outputs["EventBusName"]["Value"] == {"Ref": "EventBus"}
    assert outputs["EventBusArn"]["Value"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert outputs["AlertsTopicArn"]["Value"] == {"Ref": "AlertsTopic"}
    assert "DashboardUrl" in outputs


def test_projector_never_skips_records() -> None:
    projector = _resources()["LedgerProjectorFunction"]["Properties"]
    stream = projector["Events"]["LedgerStream"]["Properties"]
    assert stream["Stream"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert stream["MaximumRetryAttempts"] == -1
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (only_wallets,) = stream["FilterCriteria"]["Filters"]
    assert json.loads(only_wallets["Pattern"])["dynamodb"] == {"Keys": {"sk": {"S": ["W"]}}}
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["LedgerProjectorDLQ", "Arn"]
    }
    actions = _policy_actions("LedgerProjectorFunction")
    # ledger entries in batches; grants-list lines by field updates
    assert actions[repr({"Fn::GetAtt": ["LedgerTable", "Arn"]})] == {
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateItem",
    }


def _functions() -> list[str]:
    return [n for n, r in _resources().items() if r["Type"] == "AWS::Serverless::Function"]


def test_functions_share_the_layer_and_have_log_groups() -> None:
    resources = _resources()
    layer = resources["SharedLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/credit_meter/"
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert len(_functions()) == 9
    for function_id in _functions():
        assert resources[function_id]["Properties"]["Layers"] == [{"Ref": "SharedLayer"}]
        log_groups = [
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::Logs::LogGroup"
            and r["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function_id}}}"}
        ]
        assert log_groups and log_groups[0]["RetentionInDays"] == 30


def test_every_alarm_notifies_operators() -> None:
    alarms = [r for r in _resources().values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 8
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "OperatorsTopic"}]


def _alarms() -> dict[str, dict[str, Any]]:
    return {
        n: r["Properties"] for n, r in _resources().items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def _alarmed(namespace: str, metric: str, dimension: str, value: Any) -> list[dict[str, Any]]:
    """Alarms on one metric of one resource (single-metric alarms)."""
    return [
        a
        for a in _alarms().values()
        if (a.get("Namespace"), a.get("MetricName")) == (namespace, metric)
        and {"Name": dimension, "Value": value} in a.get("Dimensions", [])
    ]


def test_every_function_alarms_on_errors_and_throttles() -> None:
    for function_id in _functions():
        for metric in ("Errors", "Throttles"):
            (alarm,) = _alarmed("AWS/Lambda", metric, "FunctionName", {"Ref": function_id})
            assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 0), (function_id, metric)
            assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_stream_reader_alarms_on_iterator_age() -> None:
    for function_id in _stream_consumers():
        (alarm,) = _alarmed("AWS/Lambda", "IteratorAge", "FunctionName", {"Ref": function_id})
        assert alarm["Statistic"] == "Maximum"
        assert 0 < alarm["Threshold"] <= 300_000  # ms: at most five minutes behind


def test_every_queue_is_alarmed() -> None:
    queues = [n for n, r in _resources().items() if r["Type"] == "AWS::SQS::Queue"]
    assert {"AlertsDLQ", "LedgerProjectorDLQ", "HoldSweeperDLQ", "ResetDLQ"} <= set(queues)
    for queue in queues:
        ref = {"Fn::GetAtt": [queue, "QueueName"]}
        depth = _alarmed("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", ref)
        age = _alarmed("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", ref)
        if queue.endswith("DLQ"):
            (alarm,) = depth  # any message in a dead-letter queue is an operator's business
            assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        else:
            (alarm,) = age  # a work queue: alarmed when it falls behind
            assert alarm["Threshold"] <= 900


def test_api_and_table_alarms() -> None:
    (errors,) = _alarmed("AWS/ApiGateway", "5xx", "ApiId", {"Ref": "HttpApi"})
    assert {"Name": "Stage", "Value": {"Ref": "Stage"}} in errors["Dimensions"]
    (conflicts,) = _alarmed(
        "AWS/DynamoDB", "TransactionConflict", "TableName", {"Ref": "LedgerTable"}
    )
    assert conflicts["Statistic"] == "Sum" and conflicts["Threshold"] > 0  # sustained only
    throttles = _alarms()["LedgerTableThrottlesAlarm"]
    watched = {
        m["MetricStat"]["Metric"]["MetricName"]
        for m in throttles["Metrics"]
        if "MetricStat" in m
        and {"Name": "TableName", "Value": {"Ref": "LedgerTable"}}
        in m["MetricStat"]["Metric"]["Dimensions"]
    }
    assert watched == {"ReadThrottleEvents", "WriteThrottleEvents"}


def _emitted_metrics() -> set[str]:
    """The metric names the functions add (``add_metric(name="...")`` in their source)."""
    import re

    root = TEMPLATE.parent
    found: set[str] = set()
    for path in [
        *root.glob("functions/*/app.py"),
        *root.glob("layers/credit_meter/credit_meter/**/*.py"),
    ]:
        found |= set(re.findall(r'add_metric\(\s*name="(\w+)"', path.read_text()))
        found |= set(re.findall(r'"(Alerts\w+|AutoTopups\w+)"', path.read_text()))
    return found


def test_dashboard_shows_the_business_and_operational_metrics() -> None:
    import re

    template = monitoring.load_stack(TEMPLATE)
    dashboard = template["Resources"]["Dashboard"]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    body_template = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", body_template))
    known = set(template["Resources"]) | set(template["Parameters"]) | {"AWS::Region"}
    assert {n.split(".")[0] for n in names} <= known  # every ${...} resolves
    body = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body_template))
    metrics = [
        m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]
    ]
    namespace = template["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    business = {m[1] for m in metrics if m[0] == namespace}
    # Powertools adds the service dimension to every metric the functions emit.
    assert all(m[2:4] == ["service", "credit-meter"] for m in metrics if m[0] == namespace)
    assert {"CreditsCharged", "HoldsRefused", "AlertsFired", "TopupsCredited"} <= business
    assert business <= _emitted_metrics()  # no panel for a metric nobody emits
    operational = {(m[0], m[1]) for m in metrics if m[0] != namespace}
    assert {
        ("AWS/ApiGateway", "5xx"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/DynamoDB", "TransactionConflict"),
    } <= operational
    functions = {m[3] for m in metrics if m[:2] == ["AWS/Lambda", "Errors"]}
    assert functions == {f"<{f}>" for f in _functions()}
