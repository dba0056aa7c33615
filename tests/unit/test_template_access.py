"""Least privilege and authentication, read from ``template.yaml``: what each function may do,
which key it may use, which secret it may read, and which routes need a token."""

from __future__ import annotations

from typing import Any

from devtools import table

TABLE_ARN = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
BYOK_KEY = {"Fn::GetAtt": ["ByokKey", "Arn"]}


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = table.load_template(table.DEFAULT_TEMPLATE)["Resources"]
    return resources


def _functions() -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"]
        for name, r in _resources().items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    """Inline statements; one granted only under a condition (``!If [Condition, statement,
    !Ref AWS::NoValue]``) is included as granted, its condition under ``"If"``."""
    found = []
    for policy in function.get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, "inline statements only"
        for statement in policy["Statement"]:
            condition = None
            if "Fn::If" in statement:
                condition, statement, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}, "granted or not at all"
            actions = statement["Action"]
            found.append(
                {
                    **statement,
                    "Action": [actions] if isinstance(actions, str) else actions,
                    **({"If": condition} if condition else {}),
                }
            )
    return found


def test_no_function_has_wildcard_actions_or_resources() -> None:
    for name, function in _functions().items():
        for statement in _statements(function):
            assert statement["Effect"] == "Allow", name
            for action in statement["Action"]:
                assert "*" not in action, (name, action)
            resources = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                assert resource != "*", (name, statement["Action"])


def test_table_actions_are_item_level_and_never_table_wide() -> None:
    allowed = {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
    }
    for name, function in _functions().items():
        for statement in _statements(function):
            table_actions = [a for a in statement["Action"] if a.startswith("dynamodb:")]
            if not table_actions or statement["Resource"] != TABLE_ARN:
                continue
            # The projector writes ledger entries and rollups it derives, idempotently.
            extra = {"dynamodb:BatchWriteItem"} if name == "LedgerProjectorFunction" else set()
            assert set(table_actions) <= allowed | extra, (name, table_actions)
            # No scans, no table administration, no batch writes around the conditions.
            assert not {"dynamodb:Scan", "dynamodb:DeleteTable"} & set(table_actions)


def _kms(name: str) -> list[tuple[str, Any]]:
    return [
        (action, s["Resource"])
        for s in _statements(_functions()[name])
        for action in s["Action"]
        if action.startswith("kms:")
    ]


def test_only_the_byok_functions_use_the_byok_key_and_each_only_its_half() -> None:
    users = {
        name: _kms(name)
        for name in _functions()
        if any(resource == BYOK_KEY for _, resource in _kms(name))
    }
    assert users == {
        # Makes data keys (encrypts); can never decrypt a stored key.
        "ByokApiFunction": [("kms:GenerateDataKey", BYOK_KEY)],
        # The internal, audited path: decrypts only.
        "ByokRevealFunction": [("kms:Decrypt", BYOK_KEY)],
    }
    for name in users:
        (statement,) = [s for s in _statements(_functions()[name]) if s["Resource"] == BYOK_KEY]
        keys = statement["Condition"]["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"]
        assert sorted(keys) == ["org_id", "user_id"]  # bound to the user's context
        # ... and a context is required (ForAllValues alone holds for none).
        assert statement["Condition"]["Null"] == {"kms:EncryptionContextKeys": "false"}
    # Every other KMS use in the stack is the SNS topics' key, for publishing alerts.
    for name in set(_functions()) - set(users):
        for action, resource in _kms(name):
            assert resource == {"Fn::GetAtt": ["TopicsKey", "Arn"]}, (name, action)


def test_the_hot_path_function_has_no_kms_at_all() -> None:
    assert _kms("MeteringApiFunction") == []


def test_secrets_only_where_needed() -> None:
    readers: dict[str, set[str]] = {}
    for name, function in _functions().items():
        for statement in _statements(function):
            if "secretsmanager:GetSecretValue" in statement["Action"]:
                readers.setdefault(name, set()).add(statement["Resource"]["Ref"])
    assert readers == {
        "MeteringApiFunction": {"StripeApiKeySecretArn"},  # checkouts, invoice links
        "AlertsFunction": {"StripeApiKeySecretArn"},  # auto top-up payments
        "StripeWebhookFunction": {"StripeWebhookSecretArn"},  # signature checks
    }


def test_secrets_are_granted_only_when_given() -> None:
    # Deployed without the Stripe secrets (both parameters empty), no function may read one.
    template = table.load_template(table.DEFAULT_TEMPLATE)
    has_secret = {
        "StripeApiKeySecretArn": "HasStripeApiKey",
        "StripeWebhookSecretArn": "HasStripeWebhookSecret",
    }
    for parameter, condition in has_secret.items():
        assert template["Parameters"][parameter]["Default"] == ""
        assert template["Conditions"][condition] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]
        }
    grants = 0
    for name, function in _functions().items():
        for statement in _statements(function):
            if "secretsmanager:GetSecretValue" in statement["Action"]:
                assert statement.get("If") == has_secret[statement["Resource"]["Ref"]], name
                grants += 1
    assert grants == 3


def test_the_reveal_function_is_not_on_the_http_api() -> None:
    reveal = _functions()["ByokRevealFunction"]
    assert not reveal.get("Events")
    actions = {a for s in _statements(reveal) for a in s["Action"] if a.startswith("dynamodb:")}
    assert actions == {"dynamodb:GetItem", "dynamodb:PutItem"}  # the key, and its audit line


def test_every_route_but_stripes_webhook_needs_a_jwt() -> None:
    api = _resources()["HttpApi"]["Properties"]["Auth"]
    assert api["DefaultAuthorizer"] == "JwtAuthorizer"
    authorizer = api["Authorizers"]["JwtAuthorizer"]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    config = authorizer["JwtConfiguration"]
    assert {"issuer", "audience"} <= set(config)
    # Issuer and audience come from parameters, or from the optional user pool.
    assert config["issuer"]["Fn::If"][0] == "CreateUserPool"
    assert config["issuer"]["Fn::If"][2] == {"Ref": "JwtIssuer"}
    assert config["audience"]["Fn::If"] == [
        "CreateUserPool",
        [{"Ref": "UserPoolClient"}, {"Ref": "ServiceClient"}],  # users and product backends
        [{"Ref": "JwtAudience"}],
    ]
    open_routes = []
    for name, function in _functions().items():
        for event in (function.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            auth = event["Properties"].get("Auth")
            if auth is not None:
                assert auth == {"Authorizer": "NONE"}, name
                open_routes.append((event["Properties"]["Method"], event["Properties"]["Path"]))
    assert open_routes == [("POST", "/v1/webhooks/stripe")]  # Stripe signs it instead


def test_the_user_pool_is_optional_and_users_cannot_change_their_org_or_role() -> None:
    resources = _resources()
    for name in ("UserPool", "UserPoolClient", "ServiceClient", "MeteringScopes"):
        assert resources[name]["Condition"] == "CreateUserPool"
    client = resources["UserPoolClient"]["Properties"]
    assert "custom:org_id" not in client["WriteAttributes"]
    assert "custom:role" not in client["WriteAttributes"]
    schema = {a["Name"]: a for a in resources["UserPool"]["Properties"]["Schema"]}
    assert schema["org_id"]["Mutable"] is False


def test_the_service_client_gets_the_meter_scope_by_client_credentials_only() -> None:
    client = _resources()["ServiceClient"]["Properties"]
    assert client["AllowedOAuthFlows"] == ["client_credentials"]
    assert client["AllowedOAuthScopes"] == ["credit-meter/credits:meter"]  # never credits:admin
    assert client["GenerateSecret"] is True
