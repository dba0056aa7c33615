"""boto3 clients sized for DynamoDB Local on a busy machine.

The functions' own DynamoDB client (``credit_meter.storage.store``) gives a request 2 s before
it times out and tries again: right for DynamoDB, which answers in milliseconds, and for a
Lambda's 10 s budget. DynamoDB Local is one JVM that several test processes may share with
other work; under load it can take longer than that. A timed-out write that is tried again
can then meet its own first attempt and be refused by its condition, which fails a test for
nothing but slowness. The tests give every client a long read timeout instead; the retry mode
and number of attempts stay the functions' (standard, 3), so retries behave as they do in
the cloud.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from credit_meter.storage import store
from devtools import ddb_local

# Read timeouts far above any answer of a healthy DynamoDB Local, but bounded: a hung server
# still fails the test.
LOCAL_CONFIG = Config(
    connect_timeout=10,
    read_timeout=60,
    retries={"mode": "standard", "max_attempts": 3},
    tcp_keepalive=True,
)


def local_client(endpoint: str, service: str = "dynamodb") -> Any:
    """A client for ``service`` (``dynamodb`` or ``dynamodbstreams``) on DynamoDB Local."""
    return ddb_local.client(endpoint, service, config=LOCAL_CONFIG)


def patient_store() -> None:
    """Give this process's store a client with :data:`LOCAL_CONFIG`, on the endpoint and in
    the region its environment names (``AWS_ENDPOINT_URL_DYNAMODB``), as the store would
    make one. It is set in the store's cache (its private ``_client``): the store has no
    setting for timeouts, and the functions should not grow one for the tests' sake.
    ``store.reset_client()`` forgets it again. Also a process pool's initializer."""
    import botocore.session

    store.reset_client()
    session = botocore.session.get_session()
    store._client = session.create_client("dynamodb", config=LOCAL_CONFIG)
