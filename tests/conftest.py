"""Infrastructure fixtures shared by every test.

* ``aws_test_env`` (autouse, session): fake AWS credentials and region for the
  whole session, so nothing can reach a real account.
* ``ddb_local_endpoint`` (session): DynamoDB Local, started once per session
  (per xdist worker). Skipped when Java is missing, except in CI (``CI=true``),
  where that is an error.
* ``ddb_client`` (session): a boto3 DynamoDB client on DynamoDB Local.
* ``ddb_table`` (function): a fresh, uniquely named table on DynamoDB Local,
  created from ``template.yaml``; yields its name and deletes it afterwards.
* ``moto_table`` (function): the same table inside moto's ``mock_aws``; yields
  its name while the mock is active.

Tests under ``tests/integration`` are marked ``integration`` automatically.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import ddb_local, table
from tests.ddb_clients import local_client

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# Variables that could point the SDK at a real account or another endpoint.
_CLEARED_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session", autouse=True)
def aws_test_env() -> Iterator[None]:
    """Fake AWS credentials and region for the whole test session."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _CLEARED_AWS_ENV:
            mp.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        # No shared config/credentials files from the developer's home.
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield


@pytest.fixture(scope="session")
def ddb_local_endpoint(aws_test_env: None) -> Iterator[str]:
    """Endpoint URL of a DynamoDB Local started for this test session."""
    problem = None
    if not ddb_local.java_available():
        problem = "Java is not available; DynamoDB Local needs Java 17+"
    else:
        try:
            ddb_local.find_jar()
        except FileNotFoundError as exc:
            problem = str(exc)
    if problem is not None:
        if _in_ci():
            pytest.fail(f"CI requires DynamoDB Local: {problem}", pytrace=False)
        pytest.skip(problem)

    proc, endpoint = ddb_local.start()
    try:
        yield endpoint
    finally:
        ddb_local.stop(proc)


@pytest.fixture(scope="session")
def ddb_client(ddb_local_endpoint: str) -> Any:
    """boto3 DynamoDB client for DynamoDB Local (timeouts for a busy machine)."""
    return local_client(ddb_local_endpoint)


@pytest.fixture
def ddb_table(ddb_client: Any) -> Iterator[str]:
    """A fresh ledger table (schema from template.yaml) on DynamoDB Local."""
    with table.temporary_table(ddb_client) as name:
        yield name


@pytest.fixture
def moto_table(aws_test_env: None) -> Iterator[str]:
    """The ledger table (schema from template.yaml) inside moto's ``mock_aws``."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        name = f"ledger-test-{uuid.uuid4().hex[:12]}"
        table.create_table(boto3.client("dynamodb", region_name="us-east-1"), name)
        yield name
