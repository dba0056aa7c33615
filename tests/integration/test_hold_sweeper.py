"""The hold sweeper on DynamoDB Local: the real sparse ``SweepIndex``, DynamoDB's transaction
rules for batches of 24 expiries, and late commits racing concurrent sweeps.

The service's clock is frozen at the real time when each test starts and moved by hand, so
holds expire without waiting; every test ends with the stream-projected ledger checked against
the invariants (``Ledger.check``).
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from credit_meter.core.errors import Conflict
from credit_meter.core.wallets import Ended
from credit_meter.metering.expiry import HoldExpiry
from credit_meter.metering.service import SWEEP_REVISIT_SECONDS, Cost, Metering, Request
from credit_meter.storage import items as stored
from credit_meter.storage import wallet_record
from devtools.apigw import FakeContext
from tests.helpers import DEADLINE, FakeClock, frozen_clock, results
from tests.principals import TEST_ORG
from tests.services import Service

pytestmark = pytest.mark.integration

SCHEDULE_EVENT = json.loads(
    (Path(__file__).parents[2] / "events/schedule-hold-sweeper.json").read_text()
)


@pytest.fixture
def now() -> Iterator[FakeClock]:
    """The service's clock, frozen at the test's start; ``now.at(offset)`` moves it."""
    with frozen_clock(float(int(time.time()))) as fake:
        yield fake


@pytest.fixture
def run_handler(meter_table: str) -> Callable[[], dict[str, Any]]:
    """The scheduled handler, with the input the schedule sends (imported once the
    environment is set: Powertools reads it at import)."""
    from hold_sweeper.app import handler

    return lambda: handler(copy.deepcopy(SCHEDULE_EVENT), FakeContext())


def new_wallet(metering: Service, credits: str = "1000") -> str:
    wallet_id = f"sweep-{uuid.uuid4().hex[:10]}"
    # in the test caller's organisation: some tests go on through the API
    metering.put_wallet(wallet_id, "enterprise", Decimal(credits), org_id=TEST_ORG)
    return wallet_id


def hold(metering: Service, wallet_id: str, credits: int, ttl: int, member: str = "ann") -> str:
    request = Request(uuid.uuid4().hex)
    return metering.reserve(
        wallet_id, Cost(Decimal(credits)), request, "chat", member, ttl
    ).reservation_id


def statuses(ledger: Any, wallet_id: str) -> dict[str, tuple[str, Decimal]]:
    """Check the wallet's ledger; each reservation's entry as (status, credits)."""
    entries = ledger.check(wallet_id)
    found = [e for e in entries if e["type"] == "reservation"]
    by_id = {e["transaction_id"]: (e["status"], e["credits"]) for e in found}
    assert len(by_id) == len(found), "a reservation ended twice"
    return by_id


def on_index(ledger: Any, wallet_id: str) -> bool:
    page = ledger.client.query(
        TableName=ledger.table,
        IndexName=wallet_record.SWEEP_INDEX,
        KeyConditionExpression="sweep_shard = :s",
        ExpressionAttributeValues={":s": {"S": wallet_record.sweep_shard(wallet_id)}},
    )
    return any(i["pk"]["S"] == stored.wallet_pk(wallet_id) for i in page["Items"])


def test_the_scheduled_handler_expires_due_holds(
    metering: Service, ledger: Any, now: FakeClock, run_handler: Callable[[], dict[str, Any]]
) -> None:
    done, mixed, idle = (new_wallet(metering) for _ in range(3))
    due = [hold(metering, done, 10, 60), hold(metering, mixed, 20, 30, member="bo")]
    live = hold(metering, mixed, 5, 3600)
    assert not on_index(ledger, idle)

    now.at(90)
    assert run_handler() == {"wallets": 2, "expired": 2, "failed": {}}

    assert (metering.get_wallet(done).held, metering.get_wallet(done).available) == (0, 1000)
    assert (metering.get_wallet(mixed).held, metering.get_wallet(mixed).balance) == (5, 1000)
    assert statuses(ledger, done) == {due[0]: ("expired", 0)}
    assert statuses(ledger, mixed) == {due[1]: ("expired", 0)}
    entry = next(e for e in ledger.entries(mixed) if e["transaction_id"] == due[1])
    assert (entry["feature"], entry["member_id"], entry["held"]) == ("chat", "bo", 20)
    assert not on_index(ledger, done)
    assert on_index(ledger, mixed)
    assert ledger.wallet_item(mixed)["sweep_at"] == now.t + SWEEP_REVISIT_SECONDS
    assert live.split("_")[1] in ledger.wallet_item(mixed)["hd"]

    before = ledger.items()  # the whole table
    assert run_handler() == {"wallets": 0, "expired": 0, "failed": {}}
    assert ledger.items() == before


def test_the_handler_raises_for_a_failed_wallet_after_sweeping_the_others(
    metering: Service,
    ledger: Any,
    now: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    run_handler: Callable[[], dict[str, Any]],
) -> None:
    """A wallet that fails is reported, left on the index, and the run raises (so the
    scheduler retries it) only after the other wallets were swept."""
    wallets = [new_wallet(metering) for _ in range(3)]
    for wallet_id in wallets:
        hold(metering, wallet_id, 10, 60)
    broken = wallets[1]
    expire_holds = HoldExpiry.expire_holds

    def fail_one(self: HoldExpiry, wallet_id: str) -> int:
        if wallet_id == broken:
            raise RuntimeError("injected failure")
        return expire_holds(self, wallet_id)

    now.at(60)
    with monkeypatch.context() as patched:
        patched.setattr(HoldExpiry, "expire_holds", fail_one)
        with pytest.raises(RuntimeError, match=f"1 wallets not swept: .*{broken}"):
            run_handler()
    assert [metering.get_wallet(w).held for w in wallets] == [0, 10, 0]
    assert on_index(ledger, broken)

    # the next run (the scheduler's retry) catches up
    assert run_handler() == {"wallets": 1, "expired": 1, "failed": {}}
    for wallet_id in wallets:
        assert metering.get_wallet(wallet_id).held == 0
        assert [s for s, _ in statuses(ledger, wallet_id).values()] == ["expired"]


@pytest.mark.parametrize("holds", [40, 64])
def test_every_due_hold_ends_in_one_sweep_in_batches_of_24(
    metering: Service, ledger: Any, now: FakeClock, holds: int
) -> None:
    wallet_id = new_wallet(metering)
    rids = [hold(metering, wallet_id, 1 + n % 3, 60 + n % 11) for n in range(holds)]
    now.at(120)

    report = metering.sweep()

    assert (report.wallets, report.expired, report.failed) == (1, holds, {})
    wallet = metering.get_wallet(wallet_id)
    assert (wallet.balance, wallet.held, wallet.available) == (1000, 0, 1000)
    assert statuses(ledger, wallet_id) == dict.fromkeys(rids, ("expired", 0))
    assert not on_index(ledger, wallet_id)


def test_commit_after_the_sweep_is_409_and_a_late_commit_before_it_wins(
    metering: Service, ledger: Any, now: FakeClock, api: Callable[..., tuple[int, Any]]
) -> None:
    wallet_id = new_wallet(metering, "100")
    path = f"/v1/wallets/{wallet_id}/reservations"
    key = {"Idempotency-Key": "order-1"}
    body = {"feature": "chat", "credits": "10", "expires_in_seconds": 60}
    first = api("POST", path, body, key)
    assert first[0] == 201
    swept, late = first[1]["reservation_id"], hold(metering, wallet_id, 20, 60)

    now.at(61)  # both are past expires_at; the late one is committed before the sweep
    assert api("POST", f"{path}/{late}/commit", {"credits": "25"})[0] == 200
    report = metering.sweep()
    assert (report.expired, report.failed) == (1, {})

    for action in ("commit", "release"):
        status, problem = api("POST", f"{path}/{swept}/{action}")
        assert (status, problem["type"]) == (409, "/problems/reservation-expired")
    # the reserve retried with its key replays its first answer and holds nothing
    assert api("POST", path, body, key) == first
    wallet = metering.get_wallet(wallet_id)
    assert (wallet.balance, wallet.held, wallet.available) == (75, 0, 75)
    assert statuses(ledger, wallet_id) == {swept: ("expired", 0), late: ("committed", -25)}
    assert not on_index(ledger, wallet_id)


HOLDS = 30
COMMITTERS = 8
SWEEPERS = 2


def test_late_commits_race_concurrent_sweeps_and_each_hold_ends_once(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    """Every hold is past expires_at; 8 threads commit them (in random order, spread over
    about a second) while 2 threads sweep over and over. Which side wins each hold depends on
    timing (typically some of each); whatever the mix, each hold ends exactly once: committed
    for the commit's amount, or expired with the commit answered 409."""
    wallet_id = new_wallet(metering)
    held: dict[str, Decimal] = {}
    for n in range(HOLDS):
        credits = 10 + n % 5
        held[hold(metering, wallet_id, credits, 60 + n % 7)] = Decimal(credits)
    rids = list(held)
    random.shuffle(rids)
    charge = {rid: Decimal(n % 17 + 1) for n, rid in enumerate(rids)}  # some above the hold
    now.at(120)  # every hold is past expires_at: commits and sweeps both may end it
    barrier = threading.Barrier(COMMITTERS + SWEEPERS)
    committing = threading.Event()
    committing.set()

    def commit_some(worker: int) -> dict[str, Ended | Exception]:
        barrier.wait(timeout=DEADLINE)
        results: dict[str, Ended | Exception] = {}
        for rid in rids[worker::COMMITTERS]:
            time.sleep(random.uniform(0, 0.6))  # spread the commits over the sweeps
            try:
                results[rid] = Metering().commit(
                    wallet_id, rid, Cost(credits=charge[rid]), Request(f"commit-{rid}")
                )
            except Exception as error:
                results[rid] = error
        return results

    def sweep_repeatedly() -> list[Any]:
        barrier.wait(timeout=DEADLINE)
        reports = []
        while committing.is_set():
            reports.append(Metering().sweep())
        return reports

    with ThreadPoolExecutor(COMMITTERS + SWEEPERS) as pool:
        sweeps = [pool.submit(sweep_repeatedly) for _ in range(SWEEPERS)]
        commits = [pool.submit(commit_some, n) for n in range(COMMITTERS)]
        outcomes = {rid: r for done in results(commits, "committers") for rid, r in done.items()}
        committing.clear()
        reports = [r for done in results(sweeps, "sweepers") for r in done]
    final = metering.sweep()

    assert outcomes.keys() == held.keys()
    won = {rid for rid, r in outcomes.items() if isinstance(r, Ended)}
    lost = {
        rid
        for rid, r in outcomes.items()
        if isinstance(r, Conflict) and r.code == "reservation-expired"
    }
    unexpected = {rid: r for rid, r in outcomes.items() if rid not in won | lost}
    assert unexpected == {}  # no 503 contention, no 404, no other error
    for rid in won:
        released = max(Decimal(0), held[rid] - charge[rid])
        assert outcomes[rid] == Ended(rid, "committed", charge[rid], released)
    # A sweep that keeps losing to commits gives the wallet up for this run (it stays due);
    # the last one, alone, has nothing left to fight over.
    failures = [f for r in reports for f in r.failed.values()]
    assert all(f.startswith("Contention:") for f in failures), failures
    assert (final.failed, sum(r.expired for r in reports) + final.expired) == ({}, len(lost))

    expected = {rid: ("committed", -charge[rid]) for rid in won}
    expected |= {rid: ("expired", Decimal(0)) for rid in lost}
    assert statuses(ledger, wallet_id) == expected
    records = {r["sk"].removeprefix("R#H"): r["st"] for r in ledger.items(wallet_id, "R#H")}
    assert records == {rid.split("_")[1]: expected[rid][0] for rid in rids}
    wallet = metering.get_wallet(wallet_id)
    assert (wallet.held, wallet.balance) == (0, 1000 - sum(charge[rid] for rid in won))
    assert ledger.wallet_item(wallet_id)["hd"] == {}
    assert not on_index(ledger, wallet_id)
