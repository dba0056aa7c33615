"""The hold sweeper (docs/data-model.md, "Expiring holds: the sweep index").

A hold past its ``expires_at`` ends as ``expired`` (its credits return, the ledger lists it with
zero credits) when ``Metering.sweep`` — run every minute by ``functions/hold_sweeper`` — finds
its wallet on ``SweepIndex``. Until then a late commit or release still wins; after, both are a
409 ``reservation-expired``.

Each test has a table of its own and a clock of its own, starting at 2026-01-31 15:00 UTC.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from credit_meter.core.errors import Conflict
from credit_meter.metering import expiry
from credit_meter.metering.expiry import HoldExpiry
from credit_meter.metering.service import SWEEP_REVISIT_SECONDS, Cost, Metering, Request
from credit_meter.storage import items, wallet_record
from credit_meter.storage.store import Store, from_item
from devtools import monitoring, table
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, handler_module, ok
from tests.services import Service

Api = Callable[..., tuple[int, dict[str, str], Any]]
Summary = dict[str, Any]

pytestmark = pytest.mark.usefixtures("fresh_table")

ROOT = Path(__file__).parents[2]
SCHEDULE_EVENT = json.loads((ROOT / "events/schedule-hold-sweeper.json").read_text())
T0 = int(datetime(2026, 1, 31, 15, 0, tzinfo=UTC).timestamp())
WID = "w1"
W = f"/v1/wallets/{WID}"
KEY = {"Idempotency-Key": "job-42"}


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(T0) as fake:
        yield fake


@pytest.fixture(scope="module")
def sweeper_app(aws: Any) -> Any:
    """``functions/hold_sweeper/app.py``, imported once ``aws`` has set the functions'
    environment (Powertools reads it at import)."""
    return handler_module("hold_sweeper.app")


@pytest.fixture
def run_handler(sweeper_app: Any) -> Callable[[], Summary]:
    """Invoke the scheduled handler with the input the schedule sends."""
    return lambda: sweeper_app.handler(copy.deepcopy(SCHEDULE_EVENT), FakeContext())


def run_sweep() -> Summary:
    report = Metering().sweep()
    return {"wallets": report.wallets, "expired": report.expired, "failed": report.failed}


# -- helpers --------------------------------------------------------------------------------


def new_wallet(api: Api, wallet_id: str = WID, allowance: str = "50") -> str:
    ok(api("PUT", f"/v1/wallets/{wallet_id}", {"plan": "enterprise", "allowance": allowance}), 201)
    return f"/v1/wallets/{wallet_id}"


def reserve(
    api: Api,
    credits: str,
    ttl: int,
    wallet: str = W,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {"feature": "chat", "credits": credits, "expires_in_seconds": ttl, **extra}
    return ok(api("POST", f"{wallet}/reservations", body, headers), 201)


def money(api: Api, wallet: str = W) -> tuple[str, str, str]:
    body = ok(api("GET", wallet), 200)
    return body["balance"], body["held"], body["available"]


def wallet_item(wallet_id: str = WID) -> dict[str, Any]:
    item = Store().get(wallet_record.key(wallet_id))
    assert item is not None
    return item


def on_index(aws: Any, wallet_id: str = WID) -> int | None:
    """The wallet's ``sweep_at`` as ``SweepIndex`` has it, or None when it is not there."""
    page = aws.query(
        TableName=os.environ["TABLE_NAME"],
        IndexName=wallet_record.SWEEP_INDEX,
        KeyConditionExpression="sweep_shard = :s",
        ExpressionAttributeValues={":s": {"S": wallet_record.sweep_shard(wallet_id)}},
    )
    found = [from_item(i) for i in page["Items"] if i["pk"]["S"] == items.wallet_pk(wallet_id)]
    assert len(found) <= 1
    return int(found[0]["sweep_at"]) if found else None


def transactions(api: Api, project_ledger: Callable[[], None]) -> dict[str, dict[str, Any]]:
    """The wallet's ledger entries by transaction id."""
    project_ledger()
    body = ok(api("GET", f"{W}/transactions", query={"limit": "100"}), 200)
    return {e["transaction_id"]: e for e in body["items"]}


def record(wallet_id: str, reservation_id: str) -> dict[str, Any]:
    key = reservation_id.split("_")[1]
    found = Store().get(items.record_key(wallet_id, items.HOLD_RECORD, key))
    assert found is not None
    return found


# -- expiry ---------------------------------------------------------------------------------


def test_sweep_expires_the_holds_past_expires_at_and_only_those(
    api: Api, now: FakeClock, aws: Any, table_items: Any, project_ledger: Callable[[], None]
) -> None:
    new_wallet(api)
    a = reserve(api, "10", 60, member_id="alice")
    b = reserve(api, "5", 300, feature="image")
    c = reserve(api, "2", 120)
    assert money(api) == ("50", "17", "33")
    assert on_index(aws) == T0 + 60  # min(first expiry, now + 60)

    now.at(130)  # a and c are past expires_at, b is not
    assert run_sweep() == {"wallets": 1, "expired": 2, "failed": {}}
    assert money(api) == ("50", "5", "45")
    assert set(wallet_item()["hd"]) == {b["reservation_id"].split("_")[1]}
    # b stays on the index, looked at again within a minute
    assert on_index(aws) == wallet_item()["sweep_at"] == T0 + 130 + SWEEP_REVISIT_SECONDS

    entries = transactions(api, project_ledger)
    for held, feature, member in ((a, "chat", "alice"), (c, "chat", None)):
        expected = {
            "type": "reservation",
            "status": "expired",
            "credits": "0",
            "balance_after": "50",
            "feature": feature,
            "member_id": member,
        }
        entry = entries[held["reservation_id"]]
        assert {k: entry[k] for k in expected} == expected
        assert record(WID, held["reservation_id"])["st"] == "expired"
    assert b["reservation_id"] not in entries

    before = table_items()
    assert run_sweep() == {"wallets": 0, "expired": 0, "failed": {}}  # not due again yet
    assert table_items() == before

    now.at(300)  # b's turn: the last hold leaves, and so does the wallet from the index
    assert run_sweep() == {"wallets": 1, "expired": 1, "failed": {}}
    assert money(api) == ("50", "0", "50")
    assert "sweep_at" not in wallet_item()
    assert on_index(aws) is None
    assert transactions(api, project_ledger)[b["reservation_id"]]["status"] == "expired"

    before = table_items()
    now.advance(3600)
    assert run_sweep() == {"wallets": 0, "expired": 0, "failed": {}}
    assert table_items() == before


def test_a_hold_is_due_at_its_expires_at_second(api: Api, now: FakeClock) -> None:
    new_wallet(api)
    reserve(api, "1", 30)
    now.at(29)
    assert run_sweep()["expired"] == 0
    now.at(30)
    assert run_sweep()["expired"] == 1


def test_a_wallet_without_holds_is_not_on_the_index(api: Api, now: FakeClock, aws: Any) -> None:
    new_wallet(api)
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "1"}), 201)
    assert "sweep_at" not in wallet_item()
    assert on_index(aws) is None
    now.advance(86400)
    assert run_sweep() == {"wallets": 0, "expired": 0, "failed": {}}


def _forget_the_sweep_index(aws: Any) -> None:
    """Make the wallet look as the release before the sweeper left it."""
    aws.update_item(
        TableName=os.environ["TABLE_NAME"],
        Key={"pk": {"S": items.wallet_pk(WID)}, "sk": {"S": wallet_record.WALLET_SK}},
        UpdateExpression="REMOVE sweep_shard, sweep_at",
    )


def test_a_wallet_without_sweep_attributes_joins_the_index_on_its_next_reserve(
    api: Api, now: FakeClock, aws: Any
) -> None:
    new_wallet(api)
    _forget_the_sweep_index(aws)
    reserve(api, "10", 60)
    now.at(120)
    assert run_sweep()["expired"] == 1
    assert money(api) == ("50", "0", "50")


# -- commit and release around the sweep ----------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body", "keyed"),
    [
        ("commit", {"credits": "7"}, False),
        ("commit", None, True),  # commits what was held
        ("release", None, False),
        ("release", None, True),
    ],
    ids=["commit", "commit-held-keyed-hold", "release", "release-keyed-hold"],
)
def test_commit_or_release_after_the_sweep_is_409_reservation_expired(
    api: Api, now: FakeClock, table_items: Any, action: str, body: Any, keyed: bool
) -> None:
    new_wallet(api)
    rid = reserve(api, "10", 60, headers=KEY if keyed else None)["reservation_id"]
    now.at(61)
    assert run_sweep()["expired"] == 1
    before = table_items()

    for _ in range(2):  # and a retry gets the same answer
        status, headers, problem = api("POST", f"{W}/reservations/{rid}/{action}", body, KEY)
        assert status == 409, problem
        assert headers["content-type"] == "application/problem+json"
        assert problem["type"] == "/problems/reservation-expired"
        assert problem["status"] == 409 and rid in problem["detail"]
    assert table_items() == before
    assert money(api) == ("50", "0", "50")


@pytest.mark.parametrize(
    ("action", "body", "status", "after"),
    [
        ("commit", {"credits": "7"}, "committed", ("43", "0", "43")),
        ("commit", {"credits": "12"}, "committed", ("38", "0", "38")),
        ("release", None, "released", ("50", "0", "50")),
    ],
    ids=["commit-less", "commit-more", "release"],
)
def test_a_late_commit_or_release_wins_until_the_sweep(
    api: Api,
    now: FakeClock,
    aws: Any,
    project_ledger: Callable[[], None],
    action: str,
    body: Any,
    status: str,
    after: tuple[str, str, str],
) -> None:
    new_wallet(api)
    rid = reserve(api, "10", 60)["reservation_id"]
    now.at(90)  # past expires_at, not yet swept
    path = f"{W}/reservations/{rid}/{action}"
    ended = ok(api("POST", path, body, KEY), 200)
    assert ended["status"] == status
    assert money(api) == after

    assert run_sweep() == {"wallets": 1, "expired": 0, "failed": {}}  # a stale sweep_at: cleared
    assert money(api) == after
    assert on_index(aws) is None
    assert record(WID, rid)["st"] == status
    assert transactions(api, project_ledger)[rid]["status"] == status
    assert ok(api("POST", path, body, KEY), 200) == ended  # the retry still replays


@pytest.mark.parametrize("swept", [False, True], ids=["before-the-sweep", "after-the-sweep"])
def test_reserve_retried_after_its_hold_expired_replays_and_holds_nothing(
    api: Api, now: FakeClock, table_items: Any, swept: bool
) -> None:
    new_wallet(api)
    request = {"feature": "chat", "credits": "10", "expires_in_seconds": 60}
    first = api("POST", f"{W}/reservations", request, KEY)
    assert first[0] == 201
    now.at(120)
    if swept:
        assert run_sweep()["expired"] == 1
    held = money(api)
    before = table_items(WID)

    assert api("POST", f"{W}/reservations", request, KEY)[::2] == first[::2]
    other = {**request, "credits": "11"}
    status, _, problem = api("POST", f"{W}/reservations", other, KEY)
    assert (status, problem["type"]) == (409, "/problems/idempotency-key-reused")

    assert table_items(WID) == before
    assert money(api) == held == (("50", "0", "50") if swept else ("50", "10", "40"))


# -- batches --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holds", "batches"),
    [(3, [3]), (7, [3, 3, 1])],
)
def test_every_due_hold_of_a_wallet_ends_in_one_sweep_in_batches(
    api: Api,
    now: FakeClock,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    project_ledger: Callable[[], None],
    holds: int,
    batches: list[int],
) -> None:
    """The batching, with batches of 3 (moto copies the table per transaction item); the
    integration tests expire 40 and 64 holds in batches of the real size, 24."""
    monkeypatch.setattr(expiry, "EXPIRE_BATCH", 3)
    new_wallet(api)
    metering = Metering()
    for n in range(holds):
        metering.reserve(WID, Cost(Decimal(1)), Request(f"h{n}"), "chat", None, 60 + n % 5)
    live = metering.reserve(WID, Cost(Decimal(2)), Request("live"), "chat", None, 600)
    writes: list[int] = []
    transact = Store.transact

    def counting(self: Store, *ops: Any) -> None:
        writes.append(len(ops))
        transact(self, *ops)

    monkeypatch.setattr(Store, "transact", counting)
    now.at(120)
    assert run_sweep() == {"wallets": 1, "expired": holds, "failed": {}}

    assert writes == [1 + n for n in batches]  # the wallet and one record per hold
    assert money(api) == ("50", "2", "48")
    assert list(wallet_item()["hd"]) == [live.reservation_id.split("_")[1]]
    assert on_index(aws) == T0 + 120 + SWEEP_REVISIT_SECONDS
    entries = transactions(api, project_ledger)
    assert sum(e["status"] == "expired" for e in entries.values()) == holds


# -- how late a hold can be -----------------------------------------------------------------


def test_a_short_hold_behind_a_long_one_is_swept_within_a_minute(
    api: Api, now: FakeClock, aws: Any
) -> None:
    new_wallet(api)
    reserve(api, "1", 86400)
    assert on_index(aws) == T0 + 60
    now.at(10)
    short = reserve(api, "2", 5)  # expires at T0 + 15; the wallet's next look stays at T0 + 60
    assert on_index(aws) == T0 + 60

    for t in range(15, 60, 15):  # the schedule comes by: the wallet is not due yet
        now.at(t)
        assert run_sweep() == {"wallets": 0, "expired": 0, "failed": {}}
    now.at(60)
    assert run_sweep() == {"wallets": 1, "expired": 1, "failed": {}}
    assert short["reservation_id"].split("_")[1] not in wallet_item()["hd"]
    assert on_index(aws) == T0 + 120


def test_sweep_at_never_runs_more_than_a_minute_ahead(now: FakeClock) -> None:
    """A random walk of reserves (of any lifetime), commits, releases, clock moves and sweeps:
    after each step the wallet's ``sweep_at`` is at most a minute ahead of now and of every
    open hold's expiry, and a sweep leaves no hold more than a minute past its expiry."""
    rng = random.Random(20260131)
    metering = Service()
    metering.put_wallet(WID, "enterprise", Decimal(10_000))
    open_holds: list[str] = []
    for step in range(30):
        move = rng.choices(["reserve", "end", "wait", "sweep"], [4, 2, 3, 3])[0]
        if move == "reserve":
            ttl = rng.choice([1, 5, 30, 59, 60, 61, 90, 300, 3600, 86400])
            held = metering.reserve(WID, Cost(Decimal(1)), Request(f"r{step}"), "chat", None, ttl)
            open_holds.append(held.reservation_id)
        elif move == "end" and open_holds:
            rid = open_holds.pop(rng.randrange(len(open_holds)))
            try:
                if rng.random() < 0.5:
                    metering.release(WID, rid, Request(f"e{step}"))
                else:
                    metering.commit(WID, rid, Cost(), Request(f"e{step}"))
            except Conflict as swept:
                assert swept.code == "reservation-expired", swept
        elif move == "wait":
            now.advance(rng.choice([1, 10, 30, 59, 60, 61, 120]))
        elif move == "sweep":
            assert run_sweep()["failed"] == {}
            late = [h for h in wallet_item()["hd"].values() if h["x"] + 60 <= now.t]
            assert late == [], f"step {step}: holds a minute past expiry survived a sweep"

        item = wallet_item()
        expiries = [int(h["x"]) for h in item["hd"].values()]
        if expiries:
            assert "sweep_at" in item, f"step {step}: open holds but off the index"
        if "sweep_at" in item and move in ("reserve", "sweep"):
            assert item["sweep_at"] <= now.t + SWEEP_REVISIT_SECONDS, f"step {step}"
        if expiries:
            assert item["sweep_at"] < min(expiries) + SWEEP_REVISIT_SECONDS, f"step {step}"


# -- races with the sweeper -----------------------------------------------------------------


def _commit_a(m: Metering, rids: list[str]) -> None:
    m.commit(WID, rids[0], Cost(credits=Decimal(3)), Request("late"))


def _release_a(m: Metering, rids: list[str]) -> None:
    m.release(WID, rids[0], Request("late"))


def _reserve_new(m: Metering, rids: list[str]) -> None:
    m.reserve(WID, Cost(Decimal(4)), Request("new"), "chat", None, 300)


@pytest.mark.parametrize("live", [False, True], ids=["alone", "beside-a-live-hold"])
@pytest.mark.parametrize(
    ("meanwhile", "a_ends", "expired", "after", "opened"),
    [
        (_commit_a, "committed", 1, ("47", "0", "47"), 0),
        (_release_a, "released", 1, ("50", "0", "50"), 0),
        (_reserve_new, "expired", 2, ("50", "4", "46"), 1),
    ],
    ids=["commit", "release", "new-hold"],
)
def test_a_wallet_that_changes_under_the_sweeper_is_read_again(
    api: Api,
    now: FakeClock,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: Callable[[Metering, list[str]], None],
    a_ends: str,
    expired: int,
    after: tuple[str, str, str],
    opened: int,
    live: bool,
) -> None:
    """Between the sweeper's read of the wallet and its write, a late commit or release ends
    hold A, or a new hold opens: the write is refused, the sweeper reads again, and neither
    the late call nor the new hold is undone. With a live hold beside them the wallet stays
    on the index; alone, it leaves it only when no hold is left."""
    new_wallet(api)
    rids = [reserve(api, "5", 60)["reservation_id"] for _ in range(2)]
    if live:
        reserve(api, "2", 600)
    now.at(60)
    get = Store.get
    interleaved: list[bool] = []

    def get_then_interleave(self: Store, key: dict[str, str]) -> dict[str, Any] | None:
        item = get(self, key)
        if key == wallet_record.key(WID) and not interleaved:
            interleaved.append(True)
            meanwhile(Metering(), rids)
        return item

    with monkeypatch.context() as patched:
        patched.setattr(Store, "get", get_then_interleave)
        assert run_sweep() == {"wallets": 1, "expired": expired, "failed": {}}

    balance, held, available = (Decimal(x) for x in after)
    extra = 2 if live else 0
    assert money(api) == tuple(str(x) for x in (balance, held + extra, available - extra))
    assert len(wallet_item()["hd"]) == opened + live
    assert [record(WID, rid)["st"] for rid in rids] == [a_ends, "expired"]
    assert on_index(aws) == (T0 + 60 + SWEEP_REVISIT_SECONDS if opened or live else None)


# -- the scheduled handler ------------------------------------------------------------------


def test_the_handler_sweeps_every_shard_and_summarises(
    api: Api, now: FakeClock, run_handler: Callable[[], Summary]
) -> None:
    wallets = [f"team-{n}" for n in range(5)]
    assert len({wallet_record.sweep_shard(w) for w in wallets}) == 5
    for n, wallet_id in enumerate(wallets):
        wallet = new_wallet(api, wallet_id)
        for _ in range(n % 2 + 1):
            reserve(api, "1", 60, wallet)
    reserve(api, "1", 3600, new_wallet(api, "long-holds"))

    now.at(60)
    # long-holds is due too (its next look is a minute after its reserve), with nothing to expire
    assert run_handler() == {"wallets": 6, "expired": 7, "failed": {}}
    assert all(money(api, f"/v1/wallets/{w}") == ("50", "0", "50") for w in wallets)
    assert money(api, "/v1/wallets/long-holds") == ("50", "1", "49")
    assert run_handler() == {"wallets": 0, "expired": 0, "failed": {}}


def test_the_handler_raises_when_a_wallet_fails_and_sweeps_the_others(
    api: Api,
    now: FakeClock,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    sweeper_app: Any,
    run_handler: Callable[[], Summary],
) -> None:
    wallets = ["alpha", "bravo", "charlie"]
    for wallet_id in wallets:
        reserve(api, "10", 60, new_wallet(api, wallet_id))
    expire_holds = HoldExpiry.expire_holds

    def failing_for_bravo(self: HoldExpiry, wallet_id: str) -> int:
        if wallet_id == "bravo":
            raise RuntimeError("injected failure")
        return expire_holds(self, wallet_id)

    now.at(60)
    with monkeypatch.context() as patched:
        patched.setattr(HoldExpiry, "expire_holds", failing_for_bravo)
        with pytest.raises(sweeper_app.SweepIncomplete, match="1 wallets not swept") as failed:
            run_handler()
        assert run_sweep()["failed"] == {"bravo": "RuntimeError: injected failure"}
    assert "bravo" in str(failed.value) and "RuntimeError: injected failure" in str(failed.value)
    assert money(api, "/v1/wallets/alpha") == money(api, "/v1/wallets/charlie") == ("50", "0", "50")
    assert money(api, "/v1/wallets/bravo") == ("50", "10", "40")
    assert on_index(aws, "bravo") == T0 + 60  # left due for the next run

    # the next run (the scheduler's retry) catches up
    assert run_handler() == {"wallets": 1, "expired": 1, "failed": {}}
    assert money(api, "/v1/wallets/bravo") == ("50", "0", "50")


# -- the index query ------------------------------------------------------------------------


class PagedClient:
    """Answers ``query`` with the given pages in turn and remembers the requests."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def query(self, **params: Any) -> dict[str, Any]:
        self.requests.append(copy.deepcopy(params))
        return self.pages[len(self.requests) - 1]


def test_query_index_upto_reads_every_page() -> None:
    def key(n: int) -> dict[str, Any]:
        return {"pk": {"S": f"W#w{n}"}, "sk": {"S": "W"}, "sweep_at": {"N": str(n)}}

    last = {"pk": {"S": "W#w1"}, "sk": {"S": "W"}, "sweep_shard": {"S": "S#03"}}
    client = PagedClient(
        [{"Items": [key(0), key(1)], "LastEvaluatedKey": last}, {"Items": [key(2)]}]
    )
    store = Store("ledger", client=client)  # type: ignore[arg-type]

    found = list(
        store.query_index_upto(
            wallet_record.SWEEP_INDEX, "sweep_shard", "S#03", "sweep_at", Decimal(99)
        )
    )

    assert [f["pk"] for f in found] == ["W#w0", "W#w1", "W#w2"]
    first, second = client.requests
    assert first == {
        "TableName": "ledger",
        "IndexName": "SweepIndex",
        "KeyConditionExpression": "#h = :h AND #r <= :upto",
        "ExpressionAttributeNames": {"#h": "sweep_shard", "#r": "sweep_at"},
        "ExpressionAttributeValues": {":h": {"S": "S#03"}, ":upto": {"N": "99"}},
    }
    assert second == {**first, "ExclusiveStartKey": last}


def test_sweep_shards_spread_wallets_and_are_stable() -> None:
    shards = {wallet_record.sweep_shard(f"wallet-{n}") for n in range(500)}
    assert shards == {f"S#{n:02d}" for n in range(wallet_record.SWEEP_SHARDS)}
    assert wallet_record.sweep_shard("acme") == wallet_record.sweep_shard("acme")
    assert items.wallet_id_of(items.wallet_pk("a#b")) == "a#b"


# -- the template ---------------------------------------------------------------------------


def _resources() -> dict[str, Any]:
    # The main template's resources and, beside them, its nested monitoring stack's (alarms).
    resources: dict[str, Any] = monitoring.load_stack()["Resources"]
    return resources


TABLE_ARN = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
INDEX_ARN = {"Fn::Sub": "${LedgerTable.Arn}/index/SweepIndex"}


def test_template_has_the_sparse_keys_only_sweep_index() -> None:
    props = _resources()["LedgerTable"]["Properties"]
    (index,) = [
        i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == wallet_record.SWEEP_INDEX
    ]
    assert index["KeySchema"] == [
        {"AttributeName": "sweep_shard", "KeyType": "HASH"},
        {"AttributeName": "sweep_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert (types["sweep_shard"], types["sweep_at"]) == ("S", "N")
    index_definition = table.table_definition_from_template()["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in index_definition] == [
        wallet_record.SWEEP_INDEX,
        wallet_record.DUE_INDEX,
    ]


def test_template_runs_the_sweeper_every_minute_with_retries_and_a_dlq() -> None:
    resources = _resources()
    function = resources["HoldSweeperFunction"]
    props = function["Properties"]
    assert function["Type"] == "AWS::Serverless::Function"
    assert (props["CodeUri"], props["Handler"]) == ("functions/hold_sweeper/", "app.handler")
    assert props["Layers"] == [{"Ref": "SharedLayer"}]

    (schedule,) = props["Events"].values()
    assert schedule["Type"] == "ScheduleV2"
    event = schedule["Properties"]
    assert event["ScheduleExpression"] == "rate(1 minute)"
    assert event["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert event["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 300
    assert event["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["HoldSweeperDLQ", "Arn"]}}
    assert resources["HoldSweeperDLQ"]["Type"] == "AWS::SQS::Queue"
    # events/schedule-hold-sweeper.json is what the schedule sends, the time filled in
    sent = json.loads(event["Input"])
    assert sent == {**SCHEDULE_EVENT, "scheduled_time": "<aws.scheduler.scheduled-time>"}

    alarmed = {
        json.dumps(r["Properties"].get("Dimensions"), sort_keys=True)
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    for watched in (
        [{"Name": "FunctionName", "Value": {"Ref": "HoldSweeperFunction"}}],
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["HoldSweeperDLQ", "QueueName"]}}],
    ):
        assert json.dumps(watched, sort_keys=True) in alarmed


def test_template_gives_the_sweeper_only_what_it_uses() -> None:
    policies = _resources()["HoldSweeperFunction"]["Properties"]["Policies"]
    assert all(isinstance(p, dict) and p.keys() == {"Statement"} for p in policies)
    statements = [s for p in policies for s in p["Statement"]]
    assert {s["Effect"] for s in statements} == {"Allow"}
    granted = {
        (action, json.dumps(s["Resource"], sort_keys=True))
        for s in statements
        for action in s["Action"]
    }
    assert granted == {
        ("dynamodb:Query", json.dumps(INDEX_ARN)),
        ("dynamodb:GetItem", json.dumps(TABLE_ARN)),
        ("dynamodb:UpdateItem", json.dumps(TABLE_ARN)),
    }
