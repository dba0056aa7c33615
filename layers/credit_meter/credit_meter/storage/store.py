"""The DynamoDB data layer: conditional writes, transactions and reads on one table.

It knows nothing of HTTP, nor of what the items mean (:mod:`credit_meter.storage.items` does): it
makes writes, retries those refused only because the item was busy, and turns a refused condition
into :class:`WriteRejected` carrying what was there.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from credit_meter.core.errors import Contention
from credit_meter.storage.attrs import deserialize, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_client: DynamoDBClient | None = None
_client_lock = threading.Lock()


def dynamodb_client() -> DynamoDBClient:
    """One client per process, made on first use (not at import: cold starts stay short)."""
    global _client
    with _client_lock:
        if _client is not None:
            return _client
        # botocore is imported here, with the first request that needs it, not at import.
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        client: DynamoDBClient = session.create_client(  # type: ignore[assignment]
            "dynamodb",
            config=Config(
                # Worst case stays well inside the functions' 10 s timeout.
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=1,
                read_timeout=2,
                tcp_keepalive=True,
            ),
        )
        _client = client
    return _client


def reset_client() -> None:
    """Forget the cached client (tests that move between endpoints)."""
    global _client
    _client = None


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: serialize(v) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: deserialize(v) for k, v in item.items()}


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: serialize(v) for k, v in values.items()}


@dataclass(frozen=True, slots=True)
class Update:
    """One conditional UpdateItem, usable alone or inside a transaction."""

    key: dict[str, Any]
    expression: str
    condition: str | None  # None: unconditional (the write is idempotent by itself)
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    return_old: bool = True  # a refusal returns the item (False: its refusal says enough)

    @classmethod
    def setting(cls, key: dict[str, Any], fields: Mapping[str, Any]) -> Update:
        """Set attributes of an item, creating it if need be (idempotent: no condition)."""
        return cls(
            key=key,
            expression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
            condition=None,
            names={f"#f{i}": name for i, name in enumerate(fields)},
            values={f":f{i}": value for i, value in enumerate(fields.values())},
        )

    def params(self, table: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "TableName": table,
            "Key": to_item(self.key),
            "UpdateExpression": self.expression,
        }
        if self.condition is not None:
            params["ConditionExpression"] = self.condition
            if self.return_old:
                params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if self.names:
            params["ExpressionAttributeNames"] = self.names
        if self.values:
            params["ExpressionAttributeValues"] = _values(self.values)
        return params


@dataclass(frozen=True, slots=True)
class Put:
    """A Put that by default must not overwrite: the item is new or the write is refused.
    Another ``condition`` (its values in ``values``) guards a replacement; None: no guard."""

    item: dict[str, Any]
    condition: str | None = "attribute_not_exists(pk)"
    values: dict[str, Any] = field(default_factory=dict)

    def params(self, table: str) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": table, "Item": to_item(self.item)}
        if self.condition is not None:
            params["ConditionExpression"] = self.condition
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if self.values:
            params["ExpressionAttributeValues"] = _values(self.values)
        return params


@dataclass(frozen=True, slots=True)
class Check:
    """A ConditionCheck inside a transaction: the transaction writes only while ``condition``
    holds on this item, which it does not change."""

    key: dict[str, Any]
    condition: str

    def params(self, table: str) -> dict[str, Any]:
        return {"TableName": table, "Key": to_item(self.key), "ConditionExpression": self.condition}


class WriteRejected(Exception):
    """A condition failed. ``old`` has, per written item, what was there (None if nothing,
    or if that item's own condition held)."""

    def __init__(self, old: list[dict[str, Any] | None]) -> None:
        super().__init__("condition failed")
        self.old = old


_WRITE_ATTEMPTS = 6
_BUSY_REASONS = {"TransactionConflict", "ThrottlingError", "None", None}


class Store:
    """Reads and writes of one table: one DynamoDB request per call, plus retries of writes
    refused for a busy item (and of unprocessed batch items)."""

    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table = table or os.environ["TABLE_NAME"]
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or dynamodb_client()

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: dict[str, str]) -> dict[str, Any] | None:
        """One item by key, read consistently; None if there is none."""
        response = self.client.get_item(
            TableName=self.table,
            Key=to_item(key),
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def query_page(
        self, pk: str, prefix: str, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Items under ``pk`` whose sort key starts with ``prefix``, highest sort key first,
        starting after the sort key ``after``. Returns them and the last sort key read when
        more may follow."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _values({":pk": pk, ":prefix": prefix}),
            "ScanIndexForward": False,
            "Limit": limit,
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if after is not None:
            params["ExclusiveStartKey"] = to_item({"pk": pk, "sk": after})
        response = self.client.query(**params)
        found = [from_item(i) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return found, from_item(last)["sk"] if last else None

    def query_between(self, pk: str, low: str, high: str) -> list[dict[str, Any]]:
        """Every item under ``pk`` with ``low <= sk <= high``, in sort key order (all pages)."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": _values({":pk": pk, ":low": low, ":high": high}),
            "ReturnConsumedCapacity": "TOTAL",
        }
        found: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**params)
            found += [from_item(i) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return found
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_filtered(
        self,
        pk: str,
        low: str,
        high: str,
        page: int,
        filter_expression: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of items under ``pk`` with ``low <= sk <= high``, highest first, read
        consistently: ``page`` items are read, those passing the filter are returned, with the
        last sort key read when more may follow. (The next page is asked with a lower ``high``,
        not an ``ExclusiveStartKey``, which DynamoDB refuses outside the key condition.)"""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": _values(
                {":pk": pk, ":low": low, ":high": high, **(values or {})}
            ),
            "ScanIndexForward": False,
            "Limit": page,
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if filter_expression:
            params["FilterExpression"] = filter_expression
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        response = self.client.query(**params)
        found = [from_item(i) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return found, from_item(last)["sk"] if last else None

    def batch_get(self, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        """The items found for these keys, in no particular order (100 keys per request,
        unprocessed keys asked again)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [to_item(k) for k in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(8):
                response = self.client.batch_get_item(
                    RequestItems=request, ReturnConsumedCapacity="TOTAL"
                )
                found += [from_item(i) for i in response.get("Responses", {}).get(self.table, [])]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            if request:
                raise Contention("the table is busy; retry the request")
        return found

    def query_index_upto(
        self, index: str, hash_attr: str, hash_value: str, range_attr: str, upto: Decimal
    ) -> Iterator[dict[str, Any]]:
        """Every item of an index partition whose range key is at most ``upto``, oldest first."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#h = :h AND #r <= :upto",
            "ExpressionAttributeNames": {"#h": hash_attr, "#r": range_attr},
            "ExpressionAttributeValues": _values({":h": hash_value, ":upto": upto}),
        }
        while True:
            response = self.client.query(**params)
            yield from (from_item(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- writes ------------------------------------------------------------------------------

    def put_new(self, put: Put) -> None:
        """Create an item that must not exist yet; :class:`WriteRejected` if it does."""
        self._write(
            lambda: self.client.put_item(**put.params(self.table), ReturnConsumedCapacity="TOTAL"),
            1,
        )

    def update(self, update: Update) -> None:
        """One conditional update; :class:`WriteRejected` (with the old item) if refused."""
        self._write(
            lambda: self.client.update_item(
                **update.params(self.table), ReturnConsumedCapacity="TOTAL"
            ),
            1,
        )

    def delete(self, key: dict[str, Any]) -> None:
        """Delete an item, whether or not it is there (idempotent: no condition)."""
        self._write(
            lambda: self.client.delete_item(
                TableName=self.table, Key=to_item(key), ReturnConsumedCapacity="TOTAL"
            ),
            1,
        )

    def transact(self, *writes: Update | Put | Check) -> None:
        """All the writes or none (a :class:`Check` only guards them)."""
        kinds = {Update: "Update", Put: "Put", Check: "ConditionCheck"}
        items = [{kinds[type(w)]: w.params(self.table)} for w in writes]
        self._write(
            lambda: self.client.transact_write_items(
                TransactItems=items,  # type: ignore[arg-type]
                ReturnConsumedCapacity="TOTAL",
            ),
            len(items),
        )

    @staticmethod
    def _write(call: Callable[[], object], count: int) -> None:
        """Make one write; retry it while it was refused only for being busy.

        A write that meets another transaction in flight on the same item is refused with
        ``TransactionConflict`` (a transaction may also be cancelled for throttling); nothing
        was written, so trying again is safe. botocore retries neither, so this does, with
        jittered backoff, and then answers :class:`Contention` (503). A failed condition is
        never retried: it is the answer.
        """
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                call()
                return
            except Exception as err:
                if not _busy(err):
                    raise _rejected(err, count) from None
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise Contention("the wallet is busy; retry the request")

    def put_entries(self, items: list[dict[str, Any]]) -> None:
        """Write ledger entries (idempotent: same key, same content). Retries what is left."""
        for start in range(0, len(items), 25):
            requests: list[Any] = [
                {"PutRequest": {"Item": to_item(i)}} for i in items[start : start + 25]
            ]
            for attempt in range(8):
                response = self.client.batch_write_item(
                    RequestItems={self.table: requests}, ReturnConsumedCapacity="TOTAL"
                )
                requests = list(response.get("UnprocessedItems", {}).get(self.table, []))
                if not requests:
                    break
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            if requests:
                raise Contention("ledger entries left unprocessed")

    def set_fields(self, key: dict[str, str], fields: Mapping[str, Any]) -> None:
        """Set attributes of an item, creating it if need be (idempotent: no condition)."""
        self.client.update_item(
            **Update.setting(key, fields).params(self.table), ReturnConsumedCapacity="TOTAL"
        )


def _busy(err: Exception) -> bool:
    """Refused only because the item was busy (conflict or throttling), not by a condition."""
    response = _response(err)
    code = response.get("Error", {}).get("Code")
    if code == "TransactionConflictException":
        return True
    if code == "TransactionCanceledException":
        codes = {r.get("Code") for r in response.get("CancellationReasons") or []}
        return bool(codes - {"None", None}) and codes <= _BUSY_REASONS
    return False


def _response(err: Exception) -> dict[str, Any]:
    """The parsed error response of a botocore ``ClientError`` (empty for anything else)."""
    response = getattr(err, "response", None)
    return response if isinstance(response, dict) else {}


# botocore's errors for a request DynamoDB did not answer (by name: botocore is not imported
# at module load). The write may or may not have happened; the same request again, with its
# Idempotency-Key, is safe, so the caller gets a 503 to retry rather than a 500.
_NO_ANSWER = frozenset(
    {"ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError"}
)


def _rejected(err: Exception, count: int) -> Exception:
    if type(err).__name__ in _NO_ANSWER:
        return Contention("the database did not answer in time; retry the request")
    response = _response(err)
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        item = response.get("Item")
        return WriteRejected([from_item(item) if item else None])
    if code == "TransactionCanceledException":
        reasons = response.get("CancellationReasons") or [{} for _ in range(count)]
        if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            return WriteRejected([from_item(r["Item"]) if r.get("Item") else None for r in reasons])
    return err
