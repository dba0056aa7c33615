"""Deliver alerts (:mod:`credit_meter.core.alerts`): to the EventBridge bus ``EVENT_BUS_NAME``
(source ``credit-meter``, detail-type the event name) and to the SNS topic ``ALERTS_TOPIC_ARN``
(one message per alert, attribute ``event_type``). With neither set (a laptop), to a local
sink: a JSON line in ``ALERTS_FILE`` when that is set. Either way each alert delivered is
logged once, with its detail.

Each alert goes to each destination at most once per alert id, whatever the stream replays:
Powertools' idempotency utility claims ``(destination, alert id)`` in the ledger table before
publishing and marks it done after. That costs two writes per delivery, which the metering
hot path could not afford (it makes its writes idempotent by their own conditions), but alerts
are rare and off the hot path, and the utility gives exactly the claim / complete / release on
failure that publishing to a service without conditional writes needs. What it cannot close is
the crash window between a publish and the claim's completion: then the retry publishes again
(at-least-once, docs/events.md); subscribers deduplicate on the detail's ``id``.

Nothing is done at import: the clients and the persistence layer are made on first use.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from credit_meter.core.alerts import DEPLETED, LIMIT_REACHED, RESTORED, THRESHOLD_CROSSED, Alert
from credit_meter.storage import store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

SOURCE = "credit-meter"
SUBJECT_MAX = 99  # SNS: "less than 100 characters"
# Stream records are retried for at most a day (the stream's retention): a claim lives longer.
CLAIM_SECONDS = 2 * 24 * 3600
# The idempotency records: one partition of their own, sort keys ``ALERT#<destination>#<hash>``,
# never ``W``, so no stream consumer (both filter on sk = W) is invoked for them.
IDEMPOTENCY_PK = "IDEMPOTENCY#alerts"


Publisher = Callable[[Alert], None]

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_onces: dict[tuple[str, str, int], _Once] = {}


def reset_clients() -> None:
    """Forget cached clients and persistence layers (tests that move between endpoints)."""
    with _lock:
        _clients.clear()
        _onces.clear()


def _client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            # botocore loads here, with the first alert, not at import.
            import botocore.session
            from botocore.config import Config

            _clients[service] = botocore.session.get_session().create_client(
                service,
                config=Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=2,
                    read_timeout=5,
                ),
            )
        return _clients[service]


# -- what a subscriber gets -----------------------------------------------------------------


def _ascii(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def subject(alert: Alert) -> str:
    """A human-readable SNS subject (printable ASCII, under 100 characters)."""
    d = alert.detail
    wallet = f"wallet {alert.wallet_id}"
    if alert.detail_type == THRESHOLD_CROSSED:
        kind, value = d["threshold"]["type"], d["threshold"]["value"]
        text = {
            "consumed_percent": f"{wallet} has used {value}% of its allowance",
            "remaining_percent": f"{wallet} has {value}% of its allowance or less left",
            "remaining_credits": f"{wallet} has {value} credits or fewer left",
            "spend": f"{wallet} has spent {value} credits this period",
        }[kind]
    elif alert.detail_type == DEPLETED:
        text = f"{wallet} is out of credits"
    elif alert.detail_type == RESTORED:
        text = f"{wallet} has credits again"
    elif alert.detail_type == LIMIT_REACHED and d.get("scope") == "member":
        text = f"{wallet}: member {d.get('member_id')} reached their budget"
    else:
        text = f"{wallet} reached its spending limit"
    text = _ascii(f"Credit Meter: {text}")
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


def message(alert: Alert) -> dict[str, Any]:
    """The SNS message and the local sink's line: the event name and its detail."""
    return {"type": alert.detail_type, **alert.detail}


def _time(alert: Alert) -> datetime:
    at = str(alert.detail.get("occurred_at") or "")
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


# -- the destinations -----------------------------------------------------------------------


def _to_event_bus(bus: str) -> Publisher:
    def publish(alert: Alert) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": alert.detail_type,
            "Detail": json.dumps(alert.detail, separators=(",", ":")),
            "EventBusName": bus,
            "Time": _time(alert),
        }
        answer = _client("events").put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            failed = answer["Entries"][0]
            raise RuntimeError(
                f"EventBridge refused alert {alert.id}: {failed.get('ErrorCode')} "
                f"{failed.get('ErrorMessage')}"
            )

    return publish


def _to_topic(topic: str) -> Publisher:
    def publish(alert: Alert) -> None:
        _client("sns").publish(
            TopicArn=topic,
            Subject=subject(alert),
            Message=json.dumps(message(alert), separators=(",", ":")),
            MessageAttributes={
                "event_type": {"DataType": "String", "StringValue": alert.detail_type},
                "wallet_id": {"DataType": "String", "StringValue": alert.wallet_id},
            },
        )

    return publish


@functools.cache
def _logger() -> Logger:
    # Made on first use, when the function's environment names the service.
    return Logger(child=True)


def _to_local_sink(path: str | None) -> Publisher:
    # publish() logs every alert it delivers: here only the file is left to write.
    def publish(alert: Alert) -> None:
        if path:
            line = json.dumps(message(alert), separators=(",", ":"))
            with _lock, open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    return publish


def destinations() -> dict[str, Publisher]:
    """Where alerts go, by name, from the environment (read on every call: tests move it)."""
    bus, topic = os.environ.get("EVENT_BUS_NAME"), os.environ.get("ALERTS_TOPIC_ARN")
    found: dict[str, Publisher] = {}
    if bus:
        found["events"] = _to_event_bus(bus)
    if topic:
        found["sns"] = _to_topic(topic)
    if not found:
        found["local"] = _to_local_sink(os.environ.get("ALERTS_FILE"))
    return found


# -- at most once per destination -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Once:
    run: Callable[..., dict[str, str]]
    config: IdempotencyConfig


def _once_for(destination: str) -> _Once:
    """The idempotent publisher of one destination, for the current table and client."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    client = store.dynamodb_client()
    table = os.environ["TABLE_NAME"]
    key = (destination, table, id(client))
    with _lock:
        if key not in _onces:
            persistence = DynamoDBPersistenceLayer(
                table_name=table,
                key_attr="pk",
                sort_key_attr="sk",
                static_pk_value=IDEMPOTENCY_PK,
                expiry_attr="ttl",
                boto3_client=client,
            )
            config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=CLAIM_SECONDS)

            def deliver(
                alert: dict[str, str], send: Callable[[], None], token: str
            ) -> dict[str, str]:
                send()
                return {"token": token}

            # key_prefix fixes the sort key (ALERT#<destination>#<hash of the id>): a renamed
            # function or module still finds the claims of earlier deliveries.
            run = idempotent_function(
                deliver,
                data_keyword_argument="alert",
                persistence_store=persistence,
                config=config,
                key_prefix=f"ALERT#{destination}",
            )
            _onces[key] = _Once(run, config)
        return _onces[key]


def publish(alerts: Sequence[Alert], context: LambdaContext | None = None) -> list[Alert]:
    """Deliver every alert to every destination, each at most once per alert id (a replayed
    stream record publishes nothing again). Returns the alerts delivered in this call for the
    first time. Raises on the first failure; what was delivered stays delivered."""
    if not alerts:
        return []
    publishers = destinations()
    first_time = []
    for alert in alerts:
        fresh = False
        for destination, send in publishers.items():
            once = _once_for(destination)
            if context is not None:
                # The claim expires with this invocation, should it die mid-publish.
                once.config.register_lambda_context(context)
            token = uuid.uuid4().hex  # comes back only from a run that published now
            done = once.run(
                alert={"id": alert.id}, send=functools.partial(send, alert), token=token
            )
            fresh |= done["token"] == token
        if fresh:
            _logger().info(
                subject(alert), extra={"alert": message(alert), "destinations": list(publishers)}
            )
            first_time.append(alert)
    return first_time
