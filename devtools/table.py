"""The ledger table's schema, read from ``template.yaml``.

``template.yaml`` is the single source of truth for the table: tests, the local
server and any other tool create their tables through :func:`create_table`,
which converts the ``AWS::DynamoDB::Table`` properties into ``create_table``
arguments and applies Time To Live separately (``create_table`` cannot).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
DEFAULT_LOGICAL_ID = "LedgerTable"

# Properties of AWS::DynamoDB::Table that map 1:1 onto create_table arguments.
_PASSTHROUGH_PROPERTIES = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "OnDemandThroughput",
    "TableClass",
)
# Keys of a CloudFormation secondary index that create_table accepts.
_INDEX_KEYS = (
    "IndexName",
    "KeySchema",
    "Projection",
    "ProvisionedThroughput",
    "OnDemandThroughput",
)
# Everything else (PointInTimeRecoverySpecification, TimeToLiveSpecification,
# SSESpecification, Tags, ContributorInsightsSpecification, KinesisStream...,
# DeletionProtectionEnabled, ...) is deployment configuration, not schema.


# --------------------------------------------------------------------------
# YAML with CloudFormation short-form intrinsics
# --------------------------------------------------------------------------


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that accepts CloudFormation short tags (``!Ref`` etc.).

    Each tag becomes its long form as plain data: ``!Ref X`` -> ``{"Ref": "X"}``,
    ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` -> ``{"Fn::Sub": s}``.
    """


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}")

    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template (YAML or JSON) into plain data."""
    return copy.deepcopy(_load_template_cached(str(Path(path).resolve())))


@functools.cache
def _load_template_cached(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CloudFormationLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CloudFormation template")
    return data


# --------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------


def _table_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    resources = template.get("Resources") or {}
    resource = resources.get(logical_id)
    if resource is None:
        raise KeyError(f"template has no resource {logical_id!r}")
    if resource.get("Type") != "AWS::DynamoDB::Table":
        raise ValueError(f"{logical_id} is {resource.get('Type')!r}, not AWS::DynamoDB::Table")
    properties: dict[str, Any] = resource.get("Properties") or {}
    return properties


def _reject_intrinsics(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" or key.startswith("Fn::"):
                raise ValueError(
                    f"{where} uses the intrinsic function {key}; the table schema must be literal"
                )
            _reject_intrinsics(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_intrinsics(item, f"{where}[{index}]")


def _convert_index(index: dict[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(index[key]) for key in _INDEX_KEYS if key in index}


def table_definition_from_template(
    path: Path | str = DEFAULT_TEMPLATE,
    logical_id: str = DEFAULT_LOGICAL_ID,
) -> dict[str, Any]:
    """``create_table`` keyword arguments (without ``TableName``) for a template's table."""
    properties = _table_properties(load_template(path), logical_id)

    definition: dict[str, Any] = {}
    for key in _PASSTHROUGH_PROPERTIES:
        if key in properties:
            definition[key] = copy.deepcopy(properties[key])

    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if properties.get(key):
            definition[key] = [_convert_index(index) for index in properties[key]]

    stream = properties.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        definition["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }

    if "KeySchema" not in definition or "AttributeDefinitions" not in definition:
        raise ValueError(f"{logical_id} must define KeySchema and AttributeDefinitions")
    definition.setdefault("BillingMode", "PROVISIONED")
    _reject_intrinsics(definition, logical_id)
    return definition


def ttl_attribute_from_template(
    path: Path | str = DEFAULT_TEMPLATE,
    logical_id: str = DEFAULT_LOGICAL_ID,
) -> str | None:
    """The table's enabled Time To Live attribute, or ``None``."""
    properties = _table_properties(load_template(path), logical_id)
    ttl = properties.get("TimeToLiveSpecification") or {}
    if ttl.get("Enabled") is True and ttl.get("AttributeName"):
        attribute: str = ttl["AttributeName"]
        return attribute
    return None


def create_table(
    client: Any,
    name: str,
    *,
    template_path: Path | str = DEFAULT_TEMPLATE,
    logical_id: str = DEFAULT_LOGICAL_ID,
) -> dict[str, Any]:
    """Create table ``name`` as defined in the template, wait for it, enable TTL.

    ``client`` is a boto3 DynamoDB client. Returns the ``TableDescription``.
    """
    definition = table_definition_from_template(template_path, logical_id)
    client.create_table(TableName=name, **definition)
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    ttl_attribute = ttl_attribute_from_template(template_path, logical_id)
    if ttl_attribute:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
        )
    description: dict[str, Any] = client.describe_table(TableName=name)["Table"]
    return description


def delete_table(client: Any, name: str) -> None:
    """Delete table ``name`` if it exists and wait until it is gone."""
    try:
        client.delete_table(TableName=name)
    except client.exceptions.ResourceNotFoundException:
        return
    client.get_waiter("table_not_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


@contextlib.contextmanager
def temporary_table(client: Any, prefix: str = "ledger-test") -> Iterator[str]:
    """A fresh, uniquely named table from the template for the duration of the block."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_table(client, name)
    try:
        yield name
    finally:
        delete_table(client, name)
