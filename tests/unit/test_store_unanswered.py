"""A write DynamoDB does not answer (a read timeout, a dropped connection) is a 503 to retry,
never a 500: the request may or may not have been applied, and the same request again (with its
Idempotency-Key) is safe."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from credit_meter.core.errors import Contention
from credit_meter.storage.store import Put, Store, Update, _rejected

URL = "http://127.0.0.1:1/"
UNANSWERED = [
    ReadTimeoutError(endpoint_url=URL),
    EndpointConnectionError(endpoint_url=URL),
    ConnectionClosedError(endpoint_url=URL),
]


class _Silent:
    """A DynamoDB client whose every write goes unanswered."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            raise self.error

        return call


@pytest.mark.parametrize("error", UNANSWERED, ids=lambda e: type(e).__name__)
def test_an_unanswered_write_is_contention(error: Exception) -> None:
    store = Store(table="t", client=_Silent(error))  # type: ignore[arg-type]
    key = {"pk": "W#w1", "sk": "W"}
    with pytest.raises(Contention):
        store.update(Update(key=key, expression="SET a = :a", condition=None, values={":a": 1}))
    with pytest.raises(Contention):
        store.transact(Put(item={**key, "a": 1}))


@pytest.mark.usefixtures("fresh_table")
def test_an_unanswered_request_answers_503(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert api("PUT", "/v1/wallets/w-silent", {"plan": "starter"})[0] == 201

    def unanswered(call: Any, count: int) -> None:
        raise _rejected(ReadTimeoutError(endpoint_url=URL), count)

    monkeypatch.setattr(Store, "_write", staticmethod(unanswered))
    status, _, body = api("POST", "/v1/wallets/w-silent/charges", {"feature": "f", "credits": 1})
    assert (status, body["type"]) == (503, "/problems/contention"), body
