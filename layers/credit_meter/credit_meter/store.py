"""The DynamoDB data layer: one table, three item types, every racing write conditional.

Items (``docs/data-model.md`` has the full story):

* wallet ``pk=W#<id> sk=W`` — the hot item: aggregates, buckets in burn-down order, open holds
  (map ``hd``) and the postings of its latest write (``posts``) for the ledger projector;
* operation record ``pk=W#<id> sk=R#<kind><key>`` — written in the same transaction as the
  wallet update it records: it makes an operation happen at most once and lets a retry return
  the first result;
* ledger entry ``pk=W#<id> sk=T#<seq>`` — written by the stream projector from the wallet's
  new image, with the exact ``balance_after``.

This module knows nothing of HTTP. It raises :mod:`credit_meter.errors` and ``WriteRejected``.
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from credit_meter.attrs import deserialize, serialize
from credit_meter.errors import Contention, FieldProblem, InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

WALLET_SK = "W"
ENTRY_PREFIX = "T#"
RECORD_PREFIX = "R#"
HOLD_RECORD = "H"  # the end of a reservation (its commit or release)
CHARGE_RECORD = "C"
GRANT_RECORD = "G"

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
                retries={"mode": "standard", "max_attempts": 4},
                connect_timeout=2,
                read_timeout=5,
                tcp_keepalive=True,
            ),
        )
        _client = client
    return _client


def reset_client() -> None:
    """Forget the cached client (tests that move between endpoints)."""
    global _client
    _client = None


def wallet_pk(wallet_id: str) -> str:
    return f"W#{wallet_id}"


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
    condition: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def params(self, table: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "TableName": table,
            "Key": to_item(self.key),
            "UpdateExpression": self.expression,
            "ConditionExpression": self.condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if self.names:
            params["ExpressionAttributeNames"] = self.names
        if self.values:
            params["ExpressionAttributeValues"] = _values(self.values)
        return params


@dataclass(frozen=True, slots=True)
class Put:
    """A Put that must not overwrite: the item is new or the write is refused."""

    item: dict[str, Any]

    def params(self, table: str) -> dict[str, Any]:
        return {
            "TableName": table,
            "Item": to_item(self.item),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


@dataclass(frozen=True, slots=True)
class Absent:
    """A transaction guard: this key holds no item."""

    key: dict[str, Any]

    def params(self, table: str) -> dict[str, Any]:
        return {
            "TableName": table,
            "Key": to_item(self.key),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


class WriteRejected(Exception):
    """A condition failed. ``old`` has, per written item, what was there (None if nothing)."""

    def __init__(self, old: list[dict[str, Any] | None], failed: list[bool]) -> None:
        super().__init__("condition failed")
        self.old = old
        self.failed = failed


_WRITE_ATTEMPTS = 6
_BUSY_REASONS = {"TransactionConflict", "ThrottlingError", "None", None}


class Store:
    """Reads and writes of one table. Every method is one DynamoDB round trip."""

    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table = table or os.environ["TABLE_NAME"]
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or dynamodb_client()

    # -- reads -------------------------------------------------------------------------------

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=to_item({"pk": pk, "sk": sk}),
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def query_page(
        self, pk: str, prefix: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Items under ``pk`` whose sort key starts with ``prefix``, highest sort key first."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _values({":pk": pk, ":prefix": prefix}),
            "ScanIndexForward": False,
            "Limit": limit,
            "ConsistentRead": True,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if cursor is not None:
            params["ExclusiveStartKey"] = to_item({"pk": pk, "sk": decode_cursor(cursor, prefix)})
        response = self.client.query(**params)
        items = [from_item(i) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        next_cursor = encode_cursor(from_item(last)["sk"]) if last else None
        return items, next_cursor

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

    def transact(self, *writes: Update | Put | Absent) -> None:
        """All the writes or none."""
        items = []
        for write in writes:
            kind = {Update: "Update", Put: "Put", Absent: "ConditionCheck"}[type(write)]
            items.append({kind: write.params(self.table)})
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


def _rejected(err: Exception, count: int) -> Exception:
    response = _response(err)
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        item = response.get("Item")
        return WriteRejected([from_item(item) if item else None], [True])
    if code == "TransactionCanceledException":
        reasons = response.get("CancellationReasons") or [{} for _ in range(count)]
        old = [from_item(r["Item"]) if r.get("Item") else None for r in reasons]
        failed = [r.get("Code") == "ConditionalCheckFailed" for r in reasons]
        if any(failed):
            return WriteRejected(old, failed)
    return err


def encode_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    try:
        sk = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        sk = ""
    if not sk.startswith(prefix) or len(sk) > 64:
        raise InvalidRequest([FieldProblem("cursor", "is not a cursor this list returned")])
    return sk
