"""TransactionConflict: retried by the store, and a 503 when it does not let go.

DynamoDB cancels a transaction with ``TransactionConflict`` when another transaction touches one
of its items mid-flight, and refuses a single-item write (UpdateItem, PutItem) to an item that
an ongoing transaction holds with ``TransactionConflictException``. DynamoDB Local does neither
(it serialises everything), so a thin client proxy injects them — exactly as botocore raises
them — for the first ``k`` calls and then lets the real call reach DynamoDB Local.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from credit_meter.core.errors import Contention, InsufficientCredits
from credit_meter.metering.service import Cost, Request
from credit_meter.storage import store
from credit_meter.storage.store import Store
from tests.principals import DEFAULT
from tests.services import Service

pytestmark = pytest.mark.integration

ATTEMPTS_BEFORE_GIVING_UP = 6  # what the store promises to try before Contention


def _conflict(items: int, code: str = "TransactionConflict") -> ClientError:
    reasons = [{"Code": code, "Message": "Transaction is ongoing for the item"}]
    reasons += [{"Code": "None"} for _ in range(items - 1)]
    codes = ", ".join(r["Code"] for r in reasons)
    return ClientError(
        {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for "
                f"specific reasons [{codes}]",
            },
            "CancellationReasons": reasons,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "TransactWriteItems",
    )


def _single_write_conflict(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {
                "Code": "TransactionConflictException",
                "Message": "Operation was rejected because there is an ongoing transaction "
                "for the item.",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class ConflictingClient:
    """A DynamoDB client whose first ``conflicts`` transactions are cancelled by a conflict
    (and whose first ``update_conflicts`` UpdateItem and ``put_conflicts`` PutItem calls meet
    a transaction in flight)."""

    def __init__(
        self,
        real: Any,
        conflicts: int,
        update_conflicts: int = 0,
        put_conflicts: int = 0,
        reason: str = "TransactionConflict",
    ) -> None:
        self._real = real
        self.conflicts = conflicts
        self.reason = reason
        self.update_conflicts = update_conflicts
        self.put_conflicts = put_conflicts
        self.transactions = 0  # transact_write_items calls, refused or not
        self.updates = 0  # update_item calls, refused or not

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions += 1
        if self.conflicts > 0:
            self.conflicts -= 1
            raise _conflict(len(kwargs["TransactItems"]), self.reason)
        return self._real.transact_write_items(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        self.updates += 1
        if self.update_conflicts > 0:
            self.update_conflicts -= 1
            raise _single_write_conflict("UpdateItem")
        return self._real.update_item(**kwargs)

    def put_item(self, **kwargs: Any) -> Any:
        if self.put_conflicts > 0:
            self.put_conflicts -= 1
            raise _single_write_conflict("PutItem")
        return self._real.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def real_client(meter_table: str) -> Any:
    return store.dynamodb_client()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The store's back-off sleeps (not slept: the test needs no wall time for them)."""
    slept: list[float] = []
    monkeypatch.setattr(store.time, "sleep", slept.append)
    return slept


def _wallet(metering: Service, credits: str = "20") -> str:
    wid = f"conflict-{uuid.uuid4().hex[:10]}"
    metering.put_wallet(wid, "enterprise", Decimal(credits))
    return wid


def _flaky(real_client: Any, meter_table: str, conflicts: int) -> tuple[Service, Any]:
    client = ConflictingClient(real_client, conflicts)
    return Service(Store(meter_table, client=client)), client


# Each operation that writes with a transaction, prepared on a fresh wallet; run(service)
# performs it once and returns its result.
def _operations(metering: Service, wid: str) -> dict[str, Any]:
    held = metering.reserve(wid, Cost(Decimal(5)), Request("r"), "chat", "alice")
    return {
        "reserve": lambda s: s.reserve(wid, Cost(Decimal(3)), Request("r2", "k-1"), "chat"),
        "commit": lambda s: s.commit(wid, held.reservation_id, Cost(Decimal(4)), Request("c")),
        "release": lambda s: s.release(wid, held.reservation_id, Request("x")),
        "charge": lambda s: s.charge(wid, Cost(Decimal(2)), Request("h", "k-2"), "image"),
        "grant": lambda s: s.grant(wid, Decimal(10), "promo", Request("g", "k-3")),
    }


# What each operation does to (balance, held) from (20, 5), and the postings it leaves.
_EFFECT = {
    "reserve": ((Decimal(20), Decimal(8)), 1),
    "commit": ((Decimal(16), Decimal(0)), 2),
    "release": ((Decimal(20), Decimal(0)), 2),
    "charge": ((Decimal(18), Decimal(5)), 2),
    "grant": ((Decimal(30), Decimal(5)), 2),
}


@pytest.mark.parametrize("op", sorted(_EFFECT))
@pytest.mark.parametrize("conflicts", [1, ATTEMPTS_BEFORE_GIVING_UP - 1])
def test_conflicts_are_retried_and_the_operation_happens_once(
    op: str,
    conflicts: int,
    metering: Service,
    real_client: Any,
    meter_table: str,
    ledger: Any,
    sleeps: list[float],
) -> None:
    wid = _wallet(metering)
    run = _operations(metering, wid)[op]
    service, client = _flaky(real_client, meter_table, conflicts)

    first = run(service)

    assert client.transactions == conflicts + 1
    assert len(sleeps) == conflicts, "no back-off between attempts"
    wallet = metering.get_wallet(wid)
    (balance, held), postings = _EFFECT[op]
    assert (wallet.balance, wallet.held) == (balance, held)
    entries = ledger.check(wid)
    assert len(entries) == postings
    # Retrying the request now (a client retry) replays the first result, changes nothing.
    assert run(metering) == first
    assert (metering.get_wallet(wid).balance, metering.get_wallet(wid).held) == (balance, held)
    assert len(ledger.check(wid)) == postings


@pytest.mark.parametrize("op", sorted(_EFFECT))
def test_endless_conflicts_raise_contention_and_write_nothing(
    op: str,
    metering: Service,
    real_client: Any,
    meter_table: str,
    ledger: Any,
    sleeps: list[float],
) -> None:
    wid = _wallet(metering)
    run = _operations(metering, wid)[op]
    before = ledger.items()
    service, client = _flaky(real_client, meter_table, conflicts=1_000)

    with pytest.raises(Contention):
        run(service)

    # (A grant's own read-and-retry loop is for bucket-list races, not for Contention.)
    assert client.transactions == ATTEMPTS_BEFORE_GIVING_UP
    assert ledger.items() == before
    ledger.check(wid)


def test_a_real_condition_failure_after_conflicts_is_not_retried_further(
    metering: Service,
    real_client: Any,
    meter_table: str,
    sleeps: list[float],
) -> None:
    wid = _wallet(metering, "3")
    service, client = _flaky(real_client, meter_table, conflicts=2)

    with pytest.raises(InsufficientCredits):
        service.charge(wid, Cost(Decimal(4)), Request("h"), "image")

    assert client.transactions == 3  # two conflicts, then the condition decided
    assert metering.get_wallet(wid).balance == 3


def test_http_contention_is_a_503_with_retry_after_and_writes_nothing(
    api: Any,
    real_client: Any,
    ledger: Any,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    wid = f"conflict-{uuid.uuid4().hex[:10]}"
    assert api("PUT", f"/v1/wallets/{wid}", {"plan": "free"})[0] == 201
    before = ledger.items()
    client = ConflictingClient(real_client, conflicts=1_000)
    monkeypatch.setattr(store, "_client", client)

    from devtools.apigw import FakeContext, http_event
    from metering_api.app import handler

    response = handler(
        http_event(
            "POST",
            f"/v1/wallets/{wid}/charges",
            {"feature": "chat", "credits": "1"},
            claims=DEFAULT,
        ),
        FakeContext(),
    )

    assert response["statusCode"] == 503
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/problem+json"
    assert '"/problems/contention"' in response["body"]
    assert ledger.items() == before

    # The client retries once the conflicts are over: one charge, once.
    client.conflicts = 2
    code, body = api(
        "POST",
        f"/v1/wallets/{wid}/charges",
        {"feature": "chat", "credits": "1"},
        {"Idempotency-Key": "after-503"},
    )
    assert code == 201, body
    assert api("GET", f"/v1/wallets/{wid}")[1]["balance"] == "49"
    assert len(ledger.check(wid)) == 2


def test_a_reserve_meeting_a_transaction_in_flight_is_retried_not_a_500(
    api: Any,
    real_client: Any,
    ledger: Any,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    wid = f"conflict-{uuid.uuid4().hex[:10]}"
    assert api("PUT", f"/v1/wallets/{wid}", {"plan": "free"})[0] == 201
    client = ConflictingClient(real_client, conflicts=0, update_conflicts=1)
    monkeypatch.setattr(store, "_client", client)

    code, body = api("POST", f"/v1/wallets/{wid}/reservations", {"feature": "chat", "credits": 5})

    assert code != 500, body  # docs/api.md: only 503 (with Retry-After) says "busy, retry"
    assert code == 201, body
    assert client.updates == 2
    wallet = api("GET", f"/v1/wallets/{wid}")[1]
    assert (wallet["balance"], wallet["held"]) == ("50", "5")
    ledger.check(wid)


def test_a_plan_change_meeting_a_transaction_in_flight_is_not_a_500(
    api: Any, real_client: Any, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    wid = f"conflict-{uuid.uuid4().hex[:10]}"
    assert api("PUT", f"/v1/wallets/{wid}", {"plan": "free"})[0] == 201
    monkeypatch.setattr(store, "_client", ConflictingClient(real_client, 0, put_conflicts=1))

    code, body = api("PUT", f"/v1/wallets/{wid}", {"plan": "pro"})

    assert code != 500, body
    assert code == 200, body
    # an upgrade grants the difference at once
    assert (body["plan"], body["balance"]) == ("pro", "2500")


def test_a_throttled_transaction_is_a_503_not_a_500(
    api: Any, real_client: Any, ledger: Any, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    wid = f"conflict-{uuid.uuid4().hex[:10]}"
    assert api("PUT", f"/v1/wallets/{wid}", {"plan": "free"})[0] == 201
    before = ledger.items()
    client = ConflictingClient(real_client, conflicts=1_000, reason="ThrottlingError")
    monkeypatch.setattr(store, "_client", client)

    code, body = api("POST", f"/v1/wallets/{wid}/charges", {"feature": "chat", "credits": "1"})

    assert code == 503, body
    assert ledger.items() == before
