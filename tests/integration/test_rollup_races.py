"""Usage rollups under concurrency, replays and projector failures, on DynamoDB Local
(docs/data-model.md, "The ledger"; ``credit_meter/usage.py``, ``credit_meter/projector.py``).

The projector writes each stream record's ledger entries and adds the record, once, to the
wallet's day, month and period rollups (``U#D#…``, ``U#M#…``, ``U#P#…``): an ``ADD`` under the
condition that the rollup's watermark ``s`` is below the record's last ``seq``. Whatever happened
on the way — concurrent writers, keyed retries, redelivered or shuffled records, a record that
failed after writing some of its rollups — the rollups must equal :func:`usage.fold` of the
wallet's ledger entries, attribute for attribute, and the reports that read them must agree.

Writers are threads calling the service (``tests.services.Service``), released together by a barrier
(``tests/storms.py``). Each operation posts at its own time, now or up to three and a quarter
days back (a per-thread clock), so every wallet has rollups for several days, and holds left
open are expired a day later by the sweeper's ``expire_holds``.
"""

from __future__ import annotations

import copy
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.controls.controls import Controls
from credit_meter.core import clock, usage
from credit_meter.core.catalog import UsageLine
from credit_meter.core.errors import Contention, InsufficientCredits
from credit_meter.metering.service import Cost, Request
from credit_meter.reports.reports import Reports
from credit_meter.storage import store as store_module
from credit_meter.storage import wallet_record
from devtools import table
from devtools.stream_pump import StreamPump
from tests.ddb_clients import local_client, patient_store
from tests.integration.conftest import Ledger, _as_lambda_sends, call_handler, function_env
from tests.principals import TEST_ORG
from tests.services import Service
from tests.storms import storm

pytestmark = pytest.mark.integration

ZERO = Decimal(0)
DAY_SECONDS = 86400
MODELS = ("gpt-4o-mini", "claude-haiku", "gpt-4o", "claude-sonnet", "o3", "claude-opus")
FLAT_METERS = ("image_standard", "image_hd", "app_call", "web_search", "compute_minute")
FEATURES = ("chat", "search", "agent", "image")
MEMBERS = (None, None, "ana", "bo", "cy")
# Outcomes a storm may meet without anything being wrong: a wallet run dry, a grant that lost
# its version race too often.
EXPECTED_REFUSALS = (InsufficientCredits, Contention)


# -- time: each operation posts at its own moment ----------------------------------------------

_when = threading.local()


def _thread_clock() -> float:
    return time.time() - getattr(_when, "back", 0.0)


def _days_back(days: float) -> None:
    _when.back = days * DAY_SECONDS


@pytest.fixture
def per_thread_clock() -> Iterator[None]:
    _days_back(0)
    clock.set_clock(_thread_clock)
    yield
    clock.set_clock(None)
    _days_back(0)


# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    wallet: str
    back: float  # days before now
    feature: str
    member: str | None
    cost: Cost  # the charge's, or the hold's
    end: Cost  # the commit's (Cost(): what was held)
    key: str | None  # Idempotency-Key
    digest: str  # the request body's digest (a retry repeats it)
    tries: int  # 2: retried at once with the same key and body


def _usage(rng: random.Random) -> tuple[UsageLine, ...]:
    lines: list[UsageLine] = []
    seen: set[tuple[str, str | None]] = set()
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.6:
            meter = rng.choice(usage.TOKEN_METERS)
            model: str | None = rng.choice(MODELS)
            quantity = Decimal(rng.randint(1, 9000))
        else:
            meter, model = rng.choice(FLAT_METERS), None
            quantity = Decimal(rng.randint(1, 30)) / (10 if meter == "compute_minute" else 1)
        if (meter, model) not in seen:
            seen.add((meter, model))
            lines.append(UsageLine(meter, quantity, model))
    return tuple(lines)


def _credits(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(1, 4000)) / 1000


KINDS = {
    "charge_usage": 24,
    "charge_credits": 10,
    "reserve_commit_usage": 20,
    "reserve_commit_held": 10,
    "reserve_commit_credits": 8,
    "reserve_release": 10,
    "reserve_open": 4,
    "grant": 5,
    "adjust": 3,
}


def workload(wallets: list[str], n: int, seed: int) -> list[Op]:
    """``n`` operations over the wallets, about a third with an Idempotency-Key (retried at
    once), and some keyed ones sent again later by another thread (same key and body)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    kinds, weights = zip(*KINDS.items(), strict=True)
    while len(ops) < n:
        kind = rng.choices(kinds, weights)[0]
        keyed = kind.startswith(("charge", "reserve_commit", "reserve_release")) and (
            rng.random() < 0.35
        )
        end = Cost()
        if kind == "reserve_commit_usage":
            end = Cost(usage=_usage(rng))
        elif kind == "reserve_commit_credits":
            end = Cost(rng.choice([ZERO, _credits(rng)]))
        cost = Cost(usage=_usage(rng)) if kind != "charge_credits" else Cost(_credits(rng))
        if kind.startswith("reserve") and rng.random() < 0.3:
            cost = Cost(_credits(rng) + 1)  # a hold in plain credits
        op = Op(
            kind=kind,
            wallet=rng.choice(wallets),
            back=rng.choice([0, 0, 1, 2, 3]) + rng.random() / 4,
            feature=rng.choice(FEATURES),
            member=rng.choice(MEMBERS),
            cost=cost,
            end=end,
            key=f"k-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}" if keyed else None,
            digest=uuid.UUID(int=rng.getrandbits(128)).hex,
            tries=2 if keyed else 1,
        )
        ops.append(op)
        if keyed and rng.random() < 0.3:
            ops.append(op)  # the same request again, from wherever it lands
    rng.shuffle(ops)
    return ops[:n]


def perform(op: Op) -> str:
    """Run one operation (and its retries); returns what happened."""
    _days_back(op.back)
    service = Service()
    request = Request(op.digest, op.key)
    end_request = Request(f"{op.digest}-end")
    outcome = ""
    try:
        for _ in range(op.tries):
            if op.kind.startswith("charge"):
                charged = service.charge(op.wallet, op.cost, request, op.feature, op.member)
                outcome = "charge replayed" if charged.replayed else "charged"
            elif op.kind == "grant":
                service.grant(op.wallet, Decimal(25), "promo", request, reason="storm")
                outcome = "granted"
            elif op.kind == "adjust":
                service.adjust(op.wallet, Decimal("-0.5"), "storm correction", request)
                outcome = "adjusted"
            else:
                held = service.reserve(op.wallet, op.cost, request, op.feature, op.member)
                rid = held.reservation_id
                if op.kind == "reserve_open":
                    outcome = "left open"
                elif op.kind == "reserve_release":
                    ended = service.release(op.wallet, rid, end_request)
                    outcome = "release replayed" if ended.replayed else "released"
                else:
                    ended = service.commit(op.wallet, rid, op.end, end_request)
                    outcome = "commit replayed" if ended.replayed else "committed"
    except EXPECTED_REFUSALS as refused:
        return type(refused).__name__
    return outcome


def run_storm(ops: list[Op], threads: int) -> Counter[str]:
    def work(i: int) -> list[str]:
        return [perform(op) for op in ops[i::threads]]

    results = storm(threads, work)
    outcomes: Counter[str] = Counter()
    for result in results:
        if isinstance(result, Exception):
            raise result  # anything but the expected refusals is a failure
        outcomes.update(result)
    return outcomes


def make_wallets(metering: Service, n: int) -> list[str]:
    """Wallets created three and a half days back (their period began before every operation):
    a large enterprise allowance (with a budget for one member), a plan with overage, a plain
    one."""
    _days_back(3.5)
    plans = [("enterprise", Decimal(100_000)), ("scale", None), ("pro", None)]
    wallets = []
    for i in range(n):
        wid = f"rollup-{i}-{uuid.uuid4().hex[:8]}"
        plan, allowance = plans[i % len(plans)]
        metering.put_wallet(wid, plan, allowance, org_id=TEST_ORG)  # read through the API too
        wallets.append(wid)
    Controls().set_member_budget(wallets[0], "ana", Decimal(50_000))
    _days_back(0)
    return wallets


def expire_open_holds(metering: Service, wallets: list[str]) -> int:
    """The sweeper's pass a day (and a little) later: every hold left open expires."""
    _days_back(-1.01)
    try:
        return sum(metering.expire_holds(wid) for wid in wallets)
    finally:
        _days_back(0)


# -- what the table holds --------------------------------------------------------------------


def stored_rollups(ledger: Ledger, wid: str) -> dict[str, dict[str, Any]]:
    """The wallet's rollup items as :func:`usage.fold` gives them (no key, no ``kind``)."""
    found = {}
    for item in ledger.items(wid, usage.ROLLUP_PREFIX):
        assert item["kind"] == "rollup", item
        found[item["sk"]] = {k: v for k, v in item.items() if k not in ("pk", "sk", "kind")}
    return found


def rollup_diff(
    got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Per rollup, the attributes that differ: ``(stored, folded)``."""
    diff = {}
    for sk in sorted(got.keys() | want.keys()):
        a, b = got.get(sk, {}), want.get(sk, {})
        attrs = {n: (a.get(n), b.get(n)) for n in a.keys() | b.keys() if a.get(n) != b.get(n)}
        if attrs or (sk in got) != (sk in want):
            diff[sk] = attrs
    return diff


def assert_rollups_are_the_fold(ledger: Ledger, wid: str) -> dict[str, dict[str, Any]]:
    """Entries 1..seq, the invariants of docs/domain.md on the wallet, and every rollup
    exactly the fold of the entries; returns the fold."""
    item = ledger.wallet_item(wid)
    entries = ledger.entries(wid)
    assert len(entries) == int(item["seq"])
    Ledger.check_item(item, entries)
    folded = usage.fold(entries)
    assert rollup_diff(stored_rollups(ledger, wid), folded) == {}
    return folded


def snapshot(ledger: Ledger, wallets: list[str]) -> dict[str, Any]:
    return {w: (stored_rollups(ledger, w), ledger.entries(w)) for w in wallets}


def projected_ledger(
    ddb_client: Any,
    endpoint: str,
    table_name: str,
    batch_size: int = 100,
    batches: list[list[str]] | None = None,
) -> Ledger:
    """The table's stream, from TRIM_HORIZON, into the real projector handler, as the event
    source mapping delivers it: wallet inserts and modifications only (the template's
    filter), ``batch_size`` records at most per invocation (their sequence numbers are added
    to ``batches``)."""
    from ledger_projector.app import handler

    arn = ddb_client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    seen: list[dict[str, Any]] = []

    def project(event: dict[str, Any], context: Any) -> Any:
        records = [
            r
            for r in _as_lambda_sends(event)["Records"]
            if r["eventName"] in ("INSERT", "MODIFY")
            and r["dynamodb"]["Keys"]["sk"]["S"] == wallet_record.WALLET_SK
        ]
        if not records:
            return {"batchItemFailures": []}
        seen.extend(copy.deepcopy(records))
        if batches is not None:
            batches.append([r["dynamodb"]["SequenceNumber"] for r in records])
        return handler({"Records": records}, context)

    pump = StreamPump(
        lambda: local_client(endpoint, "dynamodbstreams"), arn, project, batch_size=batch_size
    )
    return Ledger(ddb_client, table_name, pump, seen)


# -- the storm -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stormed:
    wallets: list[str]
    outcomes: Counter[str]
    expired: int
    ledger: Ledger


@pytest.fixture(scope="module")
def stormed(ddb_client: Any, ddb_local_endpoint: str) -> Iterator[Stormed]:
    """Three wallets after a storm of 250 operations on 24 threads, their open holds expired
    a day later, and the whole stream projected (one table for the tests that read it)."""
    with (
        table.temporary_table(ddb_client, "ledger-rollups") as name,
        pytest.MonkeyPatch.context() as mp,
    ):
        for variable, value in function_env(ddb_local_endpoint, name).items():
            mp.setenv(variable, value)
        patient_store()
        clock.set_clock(_thread_clock)
        try:
            metering = Service()
            metering.store.client  # noqa: B018 - one shared client, made before the threads
            wallets = make_wallets(metering, 3)
            outcomes = run_storm(workload(wallets, STORM_OPS, seed=20261121), STORM_THREADS)
            expired = expire_open_holds(metering, wallets)
        finally:
            clock.set_clock(None)
            _days_back(0)
        ledger = projected_ledger(ddb_client, ddb_local_endpoint, name)
        ledger.drain()
        yield Stormed(wallets, outcomes, expired, ledger)
    store_module.reset_client()


STORM_OPS = 250
STORM_THREADS = 24


def test_after_a_storm_every_rollup_is_the_fold_of_the_ledger(stormed: Stormed) -> None:
    outcomes = stormed.outcomes
    # the storm did what it was meant to: usage of every kind, retries answered as replays
    assert outcomes["charged"] > 40 and outcomes["committed"] > 40, outcomes
    assert outcomes["released"] > 5 and outcomes["granted"] > 0, outcomes
    assert outcomes["charge replayed"] + outcomes["commit replayed"] > 20, outcomes
    assert stormed.expired > 0
    for wid in stormed.wallets:
        folded = assert_rollups_are_the_fold(stormed.ledger, wid)
        days = [k for k in folded if k.startswith(usage.DAY_PREFIX)]
        assert len(days) >= 5  # three days back and more, today, the expiries a day later
        names = set().union(*folded.values())
        for expected in ("r", "s0", "C#ai_usage", "T#advanced", "M#o3", "F#chat", "U#bo"):
            assert expected in names, expected
        assert any(n.startswith("X#ai_usage#") for n in names)
        # every usage entry is in exactly one day, one month and one period
        total = sum((v.get("t", ZERO) for k, v in folded.items() if k in days), ZERO)
        for prefix in (usage.MONTH_PREFIX, usage.PERIOD_PREFIX):
            rolled = sum((v["t"] for k, v in folded.items() if k.startswith(prefix)), ZERO)
            assert rolled == total, prefix


def test_the_series_and_the_summary_read_what_the_fold_says(stormed: Stormed) -> None:
    for wid in stormed.wallets:
        folded = usage.fold(stormed.ledger.entries(wid))
        days = sorted(k.removeprefix(usage.DAY_PREFIX) for k in folded if k[:4] == "U#D#")

        # the day series (grouped by feature) reads exactly the fold's days
        series = Reports().series(wid, "day", days[0], days[-1], "feature")
        assert series.points[0].label == days[0] and series.points[-1].label == days[-1]
        for point in series.points:
            want = folded.get(usage.day_key(point.label), {})
            assert point.credits == want.get("t", ZERO), point
            assert (point.actions, point.returned) == (want.get("n", 0), want.get("r", 0))
            assert point.groups == usage.groups(want, "feature")
        assert series.total == sum(
            (v.get("t", ZERO) for k, v in folded.items() if k[:4] == "U#D#"), ZERO
        )

        # the month series, and the summary's breakdown is the period's rollup
        months = sorted({d[:7] for d in days})
        by_month = Reports().series(wid, "month", months[0], months[-1], "member")
        for point in by_month.points:
            want = folded.get(usage.month_key(point.label), {})
            assert point.credits == want.get("t", ZERO)
            assert point.groups == usage.groups(want, "member")
        summary = Reports().summary(wid)
        period = folded.get(usage.period_key(summary.period_start), {})
        assert sum((c.credits for c in summary.breakdown), ZERO) == period.get("t", ZERO)
        categories = {c.category: c.credits for c in summary.breakdown}
        assert categories == {
            k or "uncategorized": v for k, v in usage.groups(period, "category").items()
        }

    # and through the HTTP handler, as a client reads it
    wid = stormed.wallets[0]
    folded = usage.fold(stormed.ledger.entries(wid))
    days = sorted(k.removeprefix(usage.DAY_PREFIX) for k in folded if k[:4] == "U#D#")
    status, body = call_handler(
        "GET",
        f"/v1/wallets/{wid}/usage",
        query={"granularity": "day", "from": days[0], "to": days[-1], "group_by": "model"},
    )
    assert status == 200, body
    assert (
        len(body["points"]) == (date.fromisoformat(days[-1]) - date.fromisoformat(days[0])).days + 1
    )
    for point in body["points"]:
        want = folded.get(usage.day_key(point["date"]), {})
        assert Decimal(point["credits"]) == want.get("t", ZERO)
        assert point["actions"] == want.get("n", 0) and point["returned"] == want.get("r", 0)
        groups = {g["key"]: Decimal(g["credits"]) for g in point["groups"]}
        assert groups == usage.groups(want, "model")


# -- replays ---------------------------------------------------------------------------------


def test_replayed_and_shuffled_records_change_no_rollup(
    stormed: Stormed, ddb_client: Any, ddb_local_endpoint: str
) -> None:
    ledger, wallets = stormed.ledger, stormed.wallets
    before = snapshot(ledger, wallets)
    records = list(ledger.records)
    assert len(records) > 300

    # the last quarter redelivered out of order, in small batches
    rng = random.Random(11)
    suffix = records[len(records) * 3 // 4 :]
    rng.shuffle(suffix)
    for start in range(0, len(suffix), 7):
        assert ledger.replay(suffix[start : start + 7]) == {"batchItemFailures": []}
    assert snapshot(ledger, wallets) == before

    # a new reader of the stream, from TRIM_HORIZON: every record a second time, in order
    again = projected_ledger(ddb_client, ddb_local_endpoint, ledger.table)
    again.drain()
    assert [r["dynamodb"]["SequenceNumber"] for r in again.records] == [
        r["dynamodb"]["SequenceNumber"] for r in records
    ]
    assert snapshot(ledger, wallets) == before


# -- failures in the middle of a record ------------------------------------------------------


class InjectedFailure(RuntimeError):
    pass


@dataclass
class RollupFaults:
    """Fails one rollup write of chosen records, once each: ``fail_at(n)`` is the rollup (the
    prefix of its sort key: day, month or period) whose write fails in the ``n``-th wallet
    record the projector sees (None: none). The record's other rollups are written."""

    fail_at: Callable[[int], str | None]
    ordinals: dict[str, int] = field(default_factory=dict)  # sequence number -> n
    failed: dict[int, str] = field(default_factory=dict)  # n -> the rollup that failed
    rollups: dict[int, set[str]] = field(default_factory=dict)  # n -> its rollups' keys
    current: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def partial(self) -> int:
        """Failed records that have other rollups (written without the failed one)."""
        return sum(1 for n in self.failed if len(self.rollups[n]) > 1)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import ledger_projector.app as app

        project = app.project
        update = store_module.Store.update

        def project_record(record: Any) -> None:
            self.current = str(record.raw_event["dynamodb"]["SequenceNumber"])
            self.ordinals.setdefault(self.current, len(self.ordinals))
            project(record)

        def failing_update(store: store_module.Store, change: store_module.Update) -> None:
            sk = change.key["sk"]
            if self.current is not None and sk.startswith(usage.ROLLUP_PREFIX):
                n = self.ordinals[self.current]
                target = self.fail_at(n)
                with self.lock:  # the projector may write a record's rollups side by side
                    self.rollups.setdefault(n, set()).add(sk)
                    fail = target is not None and sk.startswith(target) and n not in self.failed
                    if fail:
                        self.failed[n] = sk
                if fail:
                    raise InjectedFailure(f"rollup {sk} of record {n}")
            update(store, change)

        monkeypatch.setattr(app, "project", project_record)
        monkeypatch.setattr(store_module.Store, "update", failing_update)


def test_a_record_failing_after_some_rollups_is_retried_and_counted_once(
    metering: Service,
    ledger: Ledger,
    per_thread_clock: None,
    ddb_client: Any,
    ddb_local_endpoint: str,
    meter_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three wallet records in four fail once, on their day, month or period rollup (the
    others written), in batches of ten mixing both wallets; the stream delivers each batch
    again from its first failed record until all of it is through."""
    wallets = make_wallets(metering, 2)
    run_storm(workload(wallets, 50, seed=3), threads=16)
    expire_open_holds(metering, wallets)

    rollups = (usage.DAY_PREFIX, usage.MONTH_PREFIX, usage.PERIOD_PREFIX, None)
    injected = RollupFaults(lambda n: rollups[n % 4])
    injected.install(monkeypatch)
    # each record fails once at most, so every retry gets further
    projected_ledger(ddb_client, ddb_local_endpoint, meter_table, 10).pump.drain(max_failures=100)

    assert len(injected.failed) > 20 and injected.partial > 15, injected
    for wid in wallets:
        assert_rollups_are_the_fold(ledger, wid)


def test_a_failed_record_followed_by_its_wallets_next_records_in_the_batch_is_counted_once(
    metering: Service,
    ledger: Ledger,
    ddb_client: Any,
    ddb_local_endpoint: str,
    meter_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the event source mapping delivers it: one batch with the wallet's creation and six
    charges; the second charge's record fails on its month rollup (its day rollup written)
    while the wallet's later records are in the same batch. Powertools' batch processor goes
    on after a failed record; had the later records been applied, their watermark would have
    passed the failed record and its retry would have been refused as a replay (usage lost
    from the month and the period, kept in the day)."""
    wid = f"rollup-batch-{uuid.uuid4().hex[:8]}"
    metering.put_wallet(wid, "enterprise", Decimal(1000))
    for i in range(6):
        lines = (UsageLine("output_tokens", Decimal(1000 * (i + 1)), "gpt-4o"),)
        metering.charge(wid, Cost(usage=lines), Request(f"c{i}"), "chat", "ana")
    # records: 0 the wallet's creation, 1..6 the charges; record 2 fails on its month
    injected = RollupFaults(lambda n: usage.MONTH_PREFIX if n == 2 else None)
    injected.install(monkeypatch)
    batches: list[list[str]] = []
    projected_ledger(ddb_client, ddb_local_endpoint, meter_table, 100, batches).drain()

    assert list(injected.failed) == [2] and injected.partial == 1
    assert len(batches[0]) == 7  # the failed record and the wallet's next four in one batch
    assert batches[1] == batches[0][2:]  # delivered again from the failed record
    assert_rollups_are_the_fold(ledger, wid)
    months = [v for k, v in stored_rollups(ledger, wid).items() if k[:4] == usage.MONTH_PREFIX]
    assert sum(v["t"] for v in months) == Decimal("8.4")  # 21,000 output tokens at 0.4


# -- the summary's forecast ------------------------------------------------------------------


def test_the_summary_of_a_wallet_that_lasts_for_millennia_forecasts_no_end(
    metering: Service, ledger: Ledger, api: Any
) -> None:
    """A million credits and one credit used this week: 7 million days at that rate, long
    after the period renews (and past the last date a datetime can hold)."""
    wid = f"rollup-forecast-{uuid.uuid4().hex[:8]}"
    metering.put_wallet(wid, "enterprise", Decimal(1_000_000), org_id=TEST_ORG)
    metering.charge(wid, Cost(Decimal(1)), Request("one"), "chat")
    ledger.drain()
    status, body = api("GET", f"/v1/wallets/{wid}/usage/summary")
    assert status == 200, body
    assert body["forecast"]["runs_out_on"] is None
