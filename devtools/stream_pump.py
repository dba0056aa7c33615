"""Feed a DynamoDB stream to a Lambda-style handler, the way the event source mapping does.

Locally there is no event source mapping, so :class:`StreamPump` polls the
table's stream (DynamoDB Local or moto) and calls ``handler(event, context)``
with ``{"Records": [...]}`` batches shaped like Lambda's DynamoDB stream events.

* Shards are read from ``TRIM_HORIZON``; a child shard is read only after its
  parent is exhausted, so per-key order is kept across shard splits.
* A handler that raises, or returns ``batchItemFailures`` (ReportBatchItemFailures),
  gets the batch again from the first failed record; records are never skipped.
* :meth:`StreamPump.drain` polls synchronously until no shard returns records
  (for tests); :meth:`StreamPump.start` / :meth:`StreamPump.stop` run the same
  polling in a background thread every ``poll_interval`` seconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devtools.lambda_context import FakeLambdaContext

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
ClientSource = str | Callable[[], Any]


class StreamPumpError(RuntimeError):
    """The handler kept failing on the same batch during :meth:`StreamPump.drain`."""


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    last_sequence: str | None = None
    finished: bool = False
    failures: int = 0


def _to_lambda_json(value: Any) -> Any:
    """Make a ``get_records`` value look like Lambda's JSON event (bytes -> base64 etc.)."""
    if isinstance(value, dict):
        return {key: _to_lambda_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_to_lambda_json(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return value


class StreamPump:
    """Poll one DynamoDB stream and hand record batches to ``handler``.

    ``source`` is either the endpoint URL of DynamoDB Local / moto (a client with
    fake credentials is created) or a zero-argument callable returning a boto3
    ``dynamodbstreams`` client.
    """

    def __init__(
        self,
        source: ClientSource,
        stream_arn: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        context_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.stream_arn = stream_arn
        self.handler = handler
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._context_factory = context_factory or (
            lambda: FakeLambdaContext(function_name="credit-meter-ledger-projector")
        )
        if isinstance(source, str):
            endpoint = source

            def factory() -> Any:
                from devtools import ddb_local

                return ddb_local.client(endpoint, "dynamodbstreams")

            self._client = factory()
        else:
            self._client = source()
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records_delivered = 0
        self.batches_delivered = 0

    # -- shard bookkeeping --------------------------------------------------

    def _refresh_shards(self) -> None:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self._client.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id not in self._shards:
                    self._shards[shard_id] = _Shard(shard_id, shard.get("ParentShardId"))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return
            kwargs["ExclusiveStartShardId"] = last

    def _readable(self, shard: _Shard) -> bool:
        if shard.finished:
            return False
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        # A parent that is no longer listed has been trimmed: nothing to wait for.
        return parent is None or parent.finished

    def _iterator(self, shard: _Shard) -> str | None:
        if shard.iterator is None:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
            if shard.last_sequence is None:
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
                kwargs["SequenceNumber"] = shard.last_sequence
            try:
                shard.iterator = self._client.get_shard_iterator(**kwargs)["ShardIterator"]
            except self._client.exceptions.ResourceNotFoundException:
                shard.finished = True  # shard trimmed away
                return None
        return shard.iterator

    # -- delivery -------------------------------------------------------------

    def _event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        converted = []
        for record in records:
            item = _to_lambda_json(record)
            item["eventSource"] = "aws:dynamodb"
            item["eventSourceARN"] = self.stream_arn
            converted.append(item)
        return {"Records": converted}

    @staticmethod
    def _first_failure(result: Any, records: list[dict[str, Any]]) -> str | None:
        """Sequence number to resume from, per ReportBatchItemFailures semantics."""
        if not isinstance(result, dict):
            return None
        failures = result.get("batchItemFailures") or []
        if not failures:
            return None
        sequences = {r["dynamodb"]["SequenceNumber"] for r in records}
        failed = [
            str(f["itemIdentifier"])
            for f in failures
            if isinstance(f, dict) and f.get("itemIdentifier")
        ]
        if not failed or any(seq not in sequences for seq in failed):
            # Invalid identifiers make Lambda retry the whole batch.
            return str(records[0]["dynamodb"]["SequenceNumber"])
        return min(failed, key=int)

    def _deliver(self, shard: _Shard, records: list[dict[str, Any]]) -> Exception | None:
        """Call the handler; return the error to retry on, or ``None`` on success."""
        try:
            result = self.handler(self._event(records), self._context_factory())
        except Exception as exc:
            retry_from = str(records[0]["dynamodb"]["SequenceNumber"])
            error: Exception | None = exc
        else:
            failed_seq = self._first_failure(result, records)
            if failed_seq is None:
                shard.last_sequence = str(records[-1]["dynamodb"]["SequenceNumber"])
                shard.failures = 0
                self.records_delivered += len(records)
                self.batches_delivered += 1
                return None
            retry_from = failed_seq
            error = StreamPumpError(f"handler reported a batch item failure at {failed_seq}")
            done = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(failed_seq)]
            self.records_delivered += len(done)
            if done:
                shard.last_sequence = str(done[-1]["dynamodb"]["SequenceNumber"])

        shard.failures += 1
        shard.iterator = self._client.get_shard_iterator(
            StreamArn=self.stream_arn,
            ShardId=shard.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=retry_from,
        )["ShardIterator"]
        return error

    def poll_once(self, *, max_failures: int | None = None) -> int:
        """One pass over every readable shard. Returns the number of records fetched.

        With ``max_failures`` set, a batch that has failed that many times in a row
        raises :class:`StreamPumpError` instead of being retried on the next pass.
        """
        with self._lock:
            self._refresh_shards()
            fetched = 0
            for shard in list(self._shards.values()):
                if not self._readable(shard):
                    continue
                iterator = self._iterator(shard)
                if iterator is None:
                    continue
                try:
                    response = self._client.get_records(
                        ShardIterator=iterator, Limit=self.batch_size
                    )
                except self._client.exceptions.ExpiredIteratorException:
                    shard.iterator = None
                    continue
                except self._client.exceptions.TrimmedDataAccessException:
                    shard.iterator, shard.last_sequence = None, None
                    continue
                records = response.get("Records", [])
                shard.iterator = response.get("NextShardIterator")
                if records:
                    fetched += len(records)
                    error = self._deliver(shard, records)
                    if error is not None:
                        log.warning(
                            "stream handler failed on shard %s (attempt %d): %s",
                            shard.shard_id,
                            shard.failures,
                            error,
                        )
                        if max_failures is not None and shard.failures >= max_failures:
                            raise StreamPumpError(
                                f"handler failed {shard.failures} times on shard {shard.shard_id}"
                            ) from error
                        continue
                if shard.iterator is None:
                    shard.finished = True  # closed shard, fully read
            return fetched

    def drain(self, *, max_failures: int = 3, max_passes: int = 10_000) -> int:
        """Poll synchronously until a pass over all shards returns no records.

        Returns the number of records delivered successfully. Raises
        :class:`StreamPumpError` if the handler fails ``max_failures`` times in a
        row on the same batch.
        """
        before = self.records_delivered
        for _ in range(max_passes):
            if self.poll_once(max_failures=max_failures) == 0:
                return self.records_delivered - before
        raise StreamPumpError(f"stream still returning records after {max_passes} passes")

    # -- background thread ---------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fetched = self.poll_once()
            except Exception:
                log.exception("stream pump poll failed")
                fetched = 0
            retrying = any(shard.failures for shard in self._shards.values())
            if fetched == 0 or retrying:
                self._stop.wait(self.poll_interval)

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stream-pump", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread (waits for the current pass to finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
