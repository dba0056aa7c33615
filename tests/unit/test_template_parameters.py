"""The main template's deployment switches: Stripe optional (top-ups off without it) and test
mode, each reaching every function through ``Globals`` (the code reading them is elsewhere)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from devtools import table

STRIPE_PARAMETERS = ("StripeApiKeySecretArn", "StripeWebhookSecretArn")
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credit-meter/stripe-AbCdEf"


def _template() -> dict[str, Any]:
    return table.load_template(table.DEFAULT_TEMPLATE)


def _globals() -> dict[str, Any]:
    variables: dict[str, Any] = _template()["Globals"]["Function"]["Environment"]["Variables"]
    return variables


@pytest.mark.parametrize("parameter", STRIPE_PARAMETERS)
def test_stripe_secrets_are_optional(parameter: str) -> None:
    declared = _template()["Parameters"][parameter]
    assert declared["Default"] == ""
    # CloudFormation matches AllowedPattern against the whole value.
    assert re.fullmatch(declared["AllowedPattern"], "")
    assert re.fullmatch(declared["AllowedPattern"], ARN)
    assert not re.fullmatch(declared["AllowedPattern"], "sk_test_not_an_arn")


def test_the_stripe_secrets_go_together() -> None:
    rule = _template()["Rules"]["StripeSecretsTogether"]
    either = [{"Fn::Not": [{"Fn::Equals": [{"Ref": p}, ""]}]} for p in STRIPE_PARAMETERS]
    assert rule["RuleCondition"] == {"Fn::Or": either}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::And": either}


def test_without_stripe_the_functions_are_told_top_ups_are_off() -> None:
    conditions = _template()["Conditions"]
    assert conditions["TopupsEnabled"] == {
        "Fn::And": [{"Condition": "HasStripeApiKey"}, {"Condition": "HasStripeWebhookSecret"}]
    }
    assert _globals()["TOPUPS_ENABLED"] == {"Fn::If": ["TopupsEnabled", "true", "false"]}


def test_test_mode_is_off_by_default_and_reaches_every_function() -> None:
    declared = _template()["Parameters"]["TestMode"]
    assert (declared["Type"], declared["Default"]) == ("String", "false")
    assert declared["AllowedValues"] == ["true", "false"]
    assert _globals()["TEST_MODE"] == {"Ref": "TestMode"}
    # No function overrides it (or TOPUPS_ENABLED) with a value of its own.
    for name, resource in _template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            own = (resource["Properties"].get("Environment") or {}).get("Variables") or {}
            assert not {"TEST_MODE", "TOPUPS_ENABLED"} & set(own), name
