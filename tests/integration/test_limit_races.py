"""Spending limits and member budgets under concurrency, on DynamoDB Local (issue "Spending
limits and member budgets"; docs/data-model.md, "Limits and member budgets").

The limit's room (``lrem``) and each member budget's room (``mb.<tag>.r``) are tested and moved
in the debit's own conditional write, so a storm of debits must stop exactly at the limit, with
every refusal a 403 (``SpendingLimitReached`` / ``MemberBudgetReached``) and never a 402 while
credits remain; limit and budget changes, the monthly reset and the hold sweeper move the rooms
relatively, so whatever lands meanwhile, the rooms stay exact: afterwards the wallet item
satisfies ``lrem = (lim or 10¹⁵) − used − held`` and, per budget, ``r = (c or 0) − u −`` its
open holds (``rooms_are_exact``).

Threads call the service directly (``Metering`` for debits, ``Controls`` for limits and
budgets), released together by a barrier (``tests/storms.py``); one storm runs the real
handler in worker processes (``lambdas``). Every storm ends with the stream-projected ledger
checked against the invariants (``Ledger.check``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.billing.periods import Advanced, Periods
from credit_meter.controls.controls import Controls
from credit_meter.core.errors import (
    Conflict,
    Contention,
    MemberBudgetReached,
    SpendingLimitReached,
)
from credit_meter.core.ids import ReservationId, member_tag
from credit_meter.core.wallets import Charge, Ended, Reservation
from credit_meter.metering.service import Cost, Metering, Request
from credit_meter.storage import wallet_record
from tests.helpers import DEADLINE, FakeClock, frozen_clock, results
from tests.services import Service
from tests.storms import failures, kinds, storm

pytestmark = pytest.mark.integration

ZERO = Decimal(0)
ONE = Decimal(1)
NO_LIMIT = Decimal(10**15)


def _wallet(metering: Service, credits: str = "1000") -> str:
    wid = f"limit-{uuid.uuid4().hex[:10]}"
    metering.put_wallet(wid, "enterprise", Decimal(credits))
    return wid


def _req() -> Request:
    return Request(request_hash=uuid.uuid4().hex)


def rooms_are_exact(ledger: Any, wid: str) -> dict[str, Any]:
    """The stored rooms agree with what they count (see the module doc); returns the item."""
    item: dict[str, Any] = ledger.wallet_item(wid)
    used, held = Decimal(item["used"]), Decimal(item["held"])
    limit = Decimal(item["lim"]) if "lim" in item else NO_LIMIT
    assert item["lrem"] == limit - used - held, (item["lrem"], limit, used, held)
    holds = item.get("hd", {})
    assert held == sum((Decimal(h["c"]) for h in holds.values()), ZERO)
    for tag, entry in item.get("mb", {}).items():
        open_ = sum((Decimal(h["c"]) for h in holds.values() if h.get("b") == tag), ZERO)
        cap = Decimal(entry["c"]) if "c" in entry else ZERO
        assert entry["r"] == cap - entry["u"] - open_, (entry["n"], entry, open_)
    return item


def budget_of(item: dict[str, Any], member: str) -> dict[str, Any]:
    entry: dict[str, Any] = item["mb"][member_tag(member)]
    return entry


# -- the spending limit ------------------------------------------------------------------------


def test_a_charge_storm_stops_exactly_at_the_limit(metering: Service, ledger: Any) -> None:
    wid = _wallet(metering, "100")
    Controls().set_limits(wid, None, Decimal(20))

    results = storm(50, lambda i: Metering().charge(wid, Cost(ONE), _req(), "chat", f"m{i % 5}"))

    # 80 credits are left, yet every refusal is the limit's: 403, never 402
    assert kinds(results) == Counter({"Charge": 20, "SpendingLimitReached": 30})
    for refused in results:
        if isinstance(refused, SpendingLimitReached):
            assert (refused.limit, refused.remaining) == (Decimal(20), ZERO)
    wallet = metering.get_wallet(wid)
    assert (wallet.balance, wallet.held, wallet.used) == (Decimal(80), ZERO, Decimal(20))
    assert rooms_are_exact(ledger, wid)["lrem"] == 0
    entries = ledger.check(wid)
    assert sum(1 for e in entries if e["type"] == "charge") == 20


ROUNDS = 3


def test_charges_and_reserve_commits_stop_exactly_at_the_limit(
    metering: Service, ledger: Any
) -> None:
    """40 threads, 3 rounds each: a 1-credit charge, or a 1-credit hold committed for 1.
    Holds count as spent and a commit of exactly the hold gives nothing back, so exactly 30
    debits get through, whichever order they land in."""
    wid = _wallet(metering, "500")
    Controls().set_limits(wid, Decimal(25), Decimal(30))
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()

    def work(i: int) -> None:
        service = Service()
        for n in range(ROUNDS):
            try:
                if (i + n) % 2:
                    service.charge(wid, Cost(ONE), _req(), "chat")
                    outcome = "charged"
                else:
                    hold = service.reserve(wid, Cost(ONE), _req(), "agent")
                    time.sleep(random.uniform(0, 0.01))  # the hold is open a while
                    ended = service.commit(wid, hold.reservation_id, Cost(ONE), _req())
                    assert ended.status == "committed"
                    outcome = "committed"
            except SpendingLimitReached as refused:
                assert refused.limit == 30
                outcome = "refused"
            with lock:
                outcomes[outcome] += 1

    results = storm(40, work)

    assert kinds(results) == Counter({"NoneType": 40}), failures(results)
    assert outcomes["charged"] + outcomes["committed"] == 30
    assert outcomes["refused"] == 40 * ROUNDS - 30
    wallet = metering.get_wallet(wid)
    assert (wallet.used, wallet.held, wallet.balance) == (Decimal(30), ZERO, Decimal(470))
    assert wallet.state == "capped"
    assert rooms_are_exact(ledger, wid)["lrem"] == 0
    ledger.check(wid)


def test_releases_and_small_commits_give_room_back_under_a_storm(
    metering: Service, ledger: Any
) -> None:
    """Holds of 1-4 credits under a limit of 20, committed for less (or released): the room
    comes back, so more debits pass than the limit, but used + held never passes it."""
    wid = _wallet(metering, "500")
    Controls().set_limits(wid, None, Decimal(20))
    charged: list[Decimal] = []
    lock = threading.Lock()

    def work(i: int) -> Counter[str]:
        rng = random.Random(i)
        service = Service()
        seen: Counter[str] = Counter()
        for _ in range(6):
            amount = Decimal(rng.randint(1, 4))
            try:
                hold = service.reserve(wid, Cost(amount), _req(), "chat")
            except SpendingLimitReached:
                seen["refused"] += 1
                continue
            if rng.random() < 0.5:
                service.release(wid, hold.reservation_id, _req())
                seen["released"] += 1
            else:
                cost = amount - Decimal(rng.randint(1, int(amount))) / 2
                service.commit(wid, hold.reservation_id, Cost(cost), _req())
                with lock:
                    charged.append(cost)
                seen["committed"] += 1
        return seen

    results = storm(30, work)

    assert kinds(results) == Counter({"Counter": 30})
    total: Counter[str] = Counter()
    for seen in results:
        assert isinstance(seen, Counter)
        total.update(seen)
    assert total["refused"] > 0 and total["released"] > 0
    item = rooms_are_exact(ledger, wid)
    assert item["used"] == sum(charged, ZERO) <= 20
    assert (item["held"], item["lrem"]) == (0, 20 - item["used"])
    ledger.check(wid)


def test_the_http_storm_is_refused_with_403_spending_limit_reached(
    lambdas: Any, shared_ledger: Any
) -> None:
    wid = f"limit-{uuid.uuid4().hex[:10]}"
    base = f"/v1/wallets/{wid}"
    assert lambdas.call("PUT", base, {"plan": "enterprise", "allowance": "100"})[0] == 201
    eur = {"allowed_limit": "0.12", "currency": "eur"}  # 12 credits
    assert lambdas.call("PUT", f"{base}/limits", eur)[0] == 200
    charge = {
        "method": "POST",
        "path": f"{base}/charges",
        "body": {"feature": "chat", "credits": "1"},
    }
    reserve = {**charge, "path": f"{base}/reservations"}

    results = lambdas.call_all([charge, reserve] * 20)

    assert Counter(code for code, _ in results) == Counter({201: 12, 403: 28})
    for code, body in results:
        if code == 403:
            assert body["type"] == "/problems/spending-limit-reached", body
            assert (body["limit"], body["remaining"]) == ("12", "0")
    _, limits = lambdas.call("GET", f"{base}/limits")
    assert (limits["remaining"], limits["fiat"]["remaining"]) == ("0", "0")
    _, wallet = lambdas.call("GET", base)
    assert wallet["limits"]["remaining"] == "0"
    assert Decimal(wallet["used"]) + Decimal(wallet["held"]) == 12
    assert wallet["available"] == "88"
    rooms_are_exact(shared_ledger, wid)
    shared_ledger.check(wid)


# -- member budgets ----------------------------------------------------------------------------

MEMBERS = {"ann": Decimal(10), "bob": Decimal(15), "cat": None, "dan": None}
PER_MEMBER = 12


def test_a_member_budget_storm_stops_only_that_member(metering: Service, ledger: Any) -> None:
    """12 threads per member, 3 rounds of a 1-credit debit each (a charge, or a hold committed
    for 1): ann (budget 10) and bob (15) stop exactly at their budgets; cat (no budget) and dan
    (a budget without a cap) get all 36 through, and nobody is refused for lack of credits."""
    wid = _wallet(metering, "1000")
    controls = Controls()
    for member, cap in MEMBERS.items():
        if member != "cat":
            controls.set_member_budget(wid, member, cap if cap is not None else Decimal(99))
    controls.set_member_budget(wid, "dan", None)
    members = list(MEMBERS)
    lock = threading.Lock()
    passed: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    held_ids: list[str] = []

    def work(i: int) -> None:
        member = members[i % len(members)]
        service = Service()
        for n in range(ROUNDS):
            try:
                if (i // len(members) + n) % 2:
                    service.charge(wid, Cost(ONE), _req(), "chat", member)
                else:
                    hold = service.reserve(wid, Cost(ONE), _req(), "chat", member)
                    with lock:
                        held_ids.append(hold.reservation_id)
                    service.commit(wid, hold.reservation_id, Cost(ONE), _req())
            except MemberBudgetReached as no:
                assert no.limit == MEMBERS[member]
                with lock:
                    refused[member] += 1
                continue
            with lock:
                passed[member] += 1

    results = storm(PER_MEMBER * len(members), work)

    assert kinds(results) == Counter({"NoneType": PER_MEMBER * len(members)}), failures(results)
    attempts = PER_MEMBER * ROUNDS
    assert passed == Counter({"ann": 10, "bob": 15, "cat": attempts, "dan": attempts})
    assert refused == Counter({"ann": attempts - 10, "bob": attempts - 15})
    item = rooms_are_exact(ledger, wid)
    assert item["used"] == 10 + 15 + 2 * attempts
    assert (budget_of(item, "ann")["u"], budget_of(item, "ann")["r"]) == (10, 0)
    assert (budget_of(item, "bob")["u"], budget_of(item, "bob")["r"]) == (15, 0)
    assert (budget_of(item, "dan")["u"], budget_of(item, "dan")["r"]) == (attempts, -attempts)
    assert member_tag("cat") not in item["mb"]
    # every hold of a budgeted member carried its tag; cat's none
    for rid in held_ids:
        parsed = ReservationId.parse(rid)
        assert parsed is not None
        assert parsed.member_tag in {None, member_tag("ann"), member_tag("bob"), member_tag("dan")}
    entries = ledger.check(wid)
    by_member = Counter(e.get("member_id") for e in entries if e["credits"] < 0)
    assert by_member == Counter({"ann": 10, "bob": 15, "cat": attempts, "dan": attempts})


def test_concurrent_new_budgets_stop_at_32_members(metering: Service, ledger: Any) -> None:
    """40 members get a budget at once in a wallet that has none yet: the first ones race to
    make the map, and exactly 32 get in; the others are refused with 409, writing nothing."""
    wid = _wallet(metering, "100")

    results = storm(40, lambda i: Controls().set_member_budget(wid, f"m{i:02d}", Decimal(i + 1)))

    assert kinds(results) == Counter({"MemberBudget": 32, "Conflict": 8})
    refused = [r for r in results if isinstance(r, Conflict)]
    assert {r.code for r in refused} == {"too-many-member-budgets"}
    item = rooms_are_exact(ledger, wid)
    assert len(item["mb"]) == wallet_record.MAX_MEMBER_BUDGETS == 32
    granted = {i for i, r in enumerate(results) if not isinstance(r, Exception)}
    assert {e["n"] for e in item["mb"].values()} == {f"m{i:02d}" for i in granted}
    for entry in item["mb"].values():
        assert entry["c"] == entry["r"] == int(entry["n"][1:]) + 1 and entry["u"] == 0


def test_member_budgets_and_the_wallet_limit_together(metering: Service, ledger: Any) -> None:
    """ann's budget of 8 and a wallet limit of 20 shared by ann, bob and cat: ann stops at 8
    (member-budget-reached, unless the wallet's room ran out first), the wallet at 20."""
    wid = _wallet(metering, "1000")
    controls = Controls()
    controls.set_limits(wid, None, Decimal(20))
    controls.set_member_budget(wid, "ann", Decimal(8))
    members = ["ann", "bob", "cat"]

    results = storm(
        60,
        lambda i: Metering().charge(wid, Cost(ONE), _req(), "chat", members[i % 3]),
    )

    outcome = Counter((members[i % 3], type(r).__name__) for i, r in enumerate(results))
    assert sum(n for (_, kind), n in outcome.items() if kind == "Charge") == 20
    assert outcome[("ann", "Charge")] <= 8
    assert {k for _, k in outcome} <= {"Charge", "SpendingLimitReached", "MemberBudgetReached"}
    assert outcome[("bob", "MemberBudgetReached")] == outcome[("cat", "MemberBudgetReached")] == 0
    if outcome[("ann", "MemberBudgetReached")]:
        assert outcome[("ann", "Charge")] == 8
    item = rooms_are_exact(ledger, wid)
    assert (item["used"], item["lrem"]) == (20, 0)
    assert budget_of(item, "ann")["u"] == outcome[("ann", "Charge")]
    ledger.check(wid)


# -- changes racing debits ---------------------------------------------------------------------

LIMITS = [None, Decimal(10), Decimal(30), Decimal(60), Decimal(100), ZERO]
CAPS = [None, Decimal(5), Decimal(20), Decimal(40), ZERO]


def test_limits_and_budgets_changed_while_debits_land_keep_the_rooms_exact(
    metering: Service, ledger: Any
) -> None:
    """24 threads debit (charges, holds committed for less or more, releases) for ann, bob and
    nobody, while 4 threads change the wallet's limit and ann's and bob's budgets over and
    over: every change moves the room by the difference in one conditional write, so whatever
    interleaving, the rooms come out exact."""
    wid = _wallet(metering, "100000")
    controls = Controls()
    controls.set_limits(wid, Decimal(10), Decimal(50))
    controls.set_member_budget(wid, "ann", Decimal(20))
    controls.set_member_budget(wid, "bob", Decimal(20))
    debitors, changers = 24, 4
    refusals: Counter[str] = Counter()
    lock = threading.Lock()

    def debit(i: int) -> None:
        rng = random.Random(i)
        service = Service()
        member = [None, "ann", "bob"][i % 3]
        for _ in range(8):
            amount = Decimal(rng.randint(1, 12)) / 4
            try:
                if rng.random() < 0.4:
                    service.charge(wid, Cost(amount), _req(), "chat", member)
                    continue
                hold = service.reserve(wid, Cost(amount), _req(), "chat", member)
            except (SpendingLimitReached, MemberBudgetReached) as no:
                with lock:
                    refusals[type(no).__name__] += 1
                continue
            time.sleep(rng.uniform(0, 0.005))
            if rng.random() < 0.3:
                service.release(wid, hold.reservation_id, _req())
            else:  # less or more than held: commits never fail
                cost = amount * Decimal(rng.choice(["0.5", "1", "1.5", "2"]))
                service.commit(wid, hold.reservation_id, Cost(cost), _req())

    def change(i: int) -> int:
        rng = random.Random(1000 + i)
        service = Controls()
        gave_up = 0
        for _ in range(10):
            try:
                if i % 2:
                    lim = rng.choice(LIMITS)
                    lat = None if lim is None else lim / 2
                    service.set_limits(wid, lat, lim)
                else:
                    service.set_member_budget(wid, ["ann", "bob"][i // 2 % 2], rng.choice(CAPS))
            except Contention:
                gave_up += 1  # kept losing to other changes: 503, nothing written
            time.sleep(rng.uniform(0, 0.01))
        return gave_up

    results = storm(debitors + changers, lambda i: debit(i) if i < debitors else change(i))

    assert kinds(results[:debitors]) == Counter({"NoneType": debitors})
    assert all(isinstance(r, int) for r in results[debitors:]), results[debitors:]
    assert sum(refusals.values()) > 0
    item = rooms_are_exact(ledger, wid)
    assert item["held"] == 0
    ledger.check(wid)
    # What a GET shows agrees with the item.
    limits = Controls().limits(wid)
    if limits.allowed_limit is not None:
        assert limits.remaining == max(ZERO, limits.allowed_limit - limits.used)
    for member in ("ann", "bob"):
        b = Controls().member_budget(wid, member)
        assert b.used == budget_of(item, member)["u"] and b.held == 0
        if b.budget is not None:
            assert b.remaining == max(ZERO, b.budget - b.used)


# -- the reset racing debits -------------------------------------------------------------------


@pytest.fixture
def now() -> Iterator[FakeClock]:
    """The service's clock, frozen and moved by hand (one for every thread)."""
    with frozen_clock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC)) as fake:
        yield fake


def _debits_after(entries: list[dict[str, Any]], boundary: int) -> dict[str | None, Decimal]:
    """Credits debited (charges and commits) in entries after seq ``boundary``, by member."""
    after: dict[str | None, Decimal] = {None: ZERO, "ann": ZERO, "bob": ZERO}
    for e in entries:
        if int(e["seq"]) > boundary and e["type"] in {"charge", "reservation"}:
            after[e.get("member_id")] -= e["credits"]
    return after


def test_the_reset_racing_debits_gives_back_exactly_the_ended_period_use(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    """Past the period's end, 4 threads run the reset (three times each) while 20 threads
    charge and reserve/commit for ann (budget 60), bob (budget 40) and nobody, under a limit
    of 300. The reset gives back the use it read, relatively, so debits landing before it
    count in the old period and those after in the new one: afterwards ``used`` and each
    member's ``u`` are exactly what the ledger shows after the reset's postings."""
    wid = _wallet(metering, "1000")  # anchored on the 15th: the period ends 2026-02-15
    controls = Controls()
    controls.set_limits(wid, Decimal(200), Decimal(300))
    controls.set_member_budget(wid, "ann", Decimal(60))
    controls.set_member_budget(wid, "bob", Decimal(40))
    service = Service()
    service.charge(wid, Cost(Decimal(100)), _req(), "chat")
    service.charge(wid, Cost(Decimal(30)), _req(), "chat", "ann")
    service.charge(wid, Cost(Decimal(20)), _req(), "chat", "bob")
    across = service.reserve(wid, Cost(Decimal(10)), _req(), "chat", "ann", 86400)
    pe = int(ledger.wallet_item(wid)["pe"])
    now.set(pe + 30)
    debitors, resetters = 20, 4
    lock = threading.Lock()
    refusals: Counter[str] = Counter()

    def debits(i: int) -> None:
        rng = random.Random(i)
        member = [None, "ann", "bob"][i % 3]
        service = Service()
        for _ in range(6):
            amount = Decimal(rng.randint(1, 8)) / 2
            try:
                if rng.random() < 0.5:
                    service.charge(wid, Cost(amount), _req(), "chat", member)
                else:
                    hold = service.reserve(wid, Cost(amount), _req(), "chat", member)
                    cost = amount * Decimal(rng.choice(["0.5", "1", "1.5"]))
                    service.commit(wid, hold.reservation_id, Cost(cost), _req())
            except (SpendingLimitReached, MemberBudgetReached) as no:
                with lock:
                    refusals[type(no).__name__] += 1

    def resets(i: int) -> list[Advanced]:
        rng = random.Random(i)
        done = []
        for _ in range(3):
            time.sleep(rng.uniform(0, 0.02))
            done.append(Periods().advance(wid))
        return done

    results = storm(debitors + resetters, lambda i: debits(i) if i < debitors else resets(i))

    assert kinds(results[:debitors]) == Counter({"NoneType": debitors})
    advanced = [a for r in results[debitors:] if isinstance(r, list) for a in r]
    assert len(advanced) == resetters * 3
    assert [a.reset for a in advanced].count(True) == 1, "the period was reset more than once"
    # the hold opened in the old period commits in the new one
    Metering().commit(wid, across.reservation_id, Cost(Decimal(12)), _req())

    item = rooms_are_exact(ledger, wid)
    assert item["ps"] == pe and item["held"] == 0
    entries = ledger.check(wid)
    reset_posts = [e for e in entries if e["type"] in {"grant", "expire"} and int(e["seq"]) > 1]
    assert reset_posts, "no reset postings"
    reset_at = min(int(e["seq"]) for e in reset_posts)
    # The reset read the wallet as it was after some entry s before its own postings: the use
    # up to s is the ended period's, everything after it (also what landed between the
    # reset's read and its write) the new period's, for the wallet and each member alike.
    reads = [
        s
        for s in [0, *(int(e["seq"]) for e in entries if int(e["seq"]) < reset_at)]
        if sum(_debits_after(entries, s).values(), ZERO) == item["used"]
    ]
    assert reads, f"used {item['used']} is not the use after any point before the reset"
    after = _debits_after(entries, reads[0])
    assert item["lrem"] == 300 - item["used"]
    assert budget_of(item, "ann")["u"] == after["ann"] and after["ann"] >= 12
    assert budget_of(item, "bob")["u"] == after["bob"]
    assert budget_of(item, "ann")["r"] == 60 - after["ann"]
    assert budget_of(item, "bob")["r"] == 40 - after["bob"]


# -- the sweeper racing commits ----------------------------------------------------------------

HOLDS = 30
COMMITTERS = 8
SWEEPERS = 2


def test_the_sweeper_racing_commits_on_budgeted_holds_ends_each_once(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    """30 budgeted holds (ann and bob), all past expires_at: 8 threads commit them (some for
    more than held) while 2 threads sweep over and over. Each hold ends once, as a commit or
    as an expiry; the budgets' and the limit's rooms get back exactly what each end gives."""
    wid = _wallet(metering, "1000")
    controls = Controls()
    controls.set_limits(wid, None, Decimal(200))
    controls.set_member_budget(wid, "ann", Decimal(100))
    controls.set_member_budget(wid, "bob", Decimal(100))
    held: dict[str, tuple[str, Decimal]] = {}
    service = Service()
    for n in range(HOLDS):
        member, credits = ["ann", "bob"][n % 2], Decimal(2 + n % 3)
        rid = service.reserve(wid, Cost(credits), _req(), "chat", member, 60).reservation_id
        held[rid] = (member, credits)
        assert ReservationId.parse(rid) == ReservationId(
            rid.split("_")[1], credits, member_tag(member)
        )
    rids = list(held)
    random.shuffle(rids)
    charge = {rid: Decimal(n % 5 + 1) for n, rid in enumerate(rids)}
    now.set(now.t + 120)
    barrier = threading.Barrier(COMMITTERS + SWEEPERS)
    committing = threading.Event()
    committing.set()

    def commit_some(worker: int) -> dict[str, Ended | Exception]:
        barrier.wait(timeout=DEADLINE)
        results: dict[str, Ended | Exception] = {}
        for rid in rids[worker::COMMITTERS]:
            time.sleep(random.uniform(0, 0.4))
            try:
                results[rid] = Metering().commit(wid, rid, Cost(charge[rid]), _req())
            except Exception as error:
                results[rid] = error
        return results

    def sweep_repeatedly() -> int:
        barrier.wait(timeout=DEADLINE)
        expired = 0
        while committing.is_set():
            expired += Metering().sweep().expired
        return expired

    with ThreadPoolExecutor(COMMITTERS + SWEEPERS) as pool:
        sweeps = [pool.submit(sweep_repeatedly) for _ in range(SWEEPERS)]
        commits = [pool.submit(commit_some, n) for n in range(COMMITTERS)]
        outcomes = {rid: r for done in results(commits, "committers") for rid, r in done.items()}
        committing.clear()
        swept = sum(results(sweeps, "sweepers"))
    swept += metering.sweep().expired

    won = {rid for rid, r in outcomes.items() if isinstance(r, Ended)}
    lost = {
        rid
        for rid, r in outcomes.items()
        if isinstance(r, Conflict) and r.code == "reservation-expired"
    }
    assert won | lost == set(held), {r: o for r, o in outcomes.items() if r not in won | lost}
    assert swept == len(lost)
    item = rooms_are_exact(ledger, wid)
    assert item["hd"] == {}
    used = {m: sum((charge[r] for r in won if held[r][0] == m), ZERO) for m in ("ann", "bob")}
    for member in ("ann", "bob"):
        entry = budget_of(item, member)
        assert (entry["u"], entry["r"]) == (used[member], 100 - used[member])
    assert item["used"] == used["ann"] + used["bob"]
    assert item["lrem"] == 200 - item["used"]
    entries = ledger.check(wid)
    ends = Counter(e["transaction_id"].split("_")[1] for e in entries if e["type"] == "reservation")
    assert ends == Counter({rid.split("_")[1]: 1 for rid in held})


# -- replays under a storm ---------------------------------------------------------------------


def test_concurrent_retries_of_a_budgeted_reserve_hold_once(metering: Service, ledger: Any) -> None:
    """16 threads send the same keyed reserve for ann at once, half of them in a process that
    has not seen her budget (the hints are shared, so this is only what the storm makes of
    them): one hold, counted once against her budget, and every answer the same."""
    wid = _wallet(metering, "100")
    Controls().set_member_budget(wid, "ann", Decimal(5))
    request = Request(request_hash="reserve-body", idempotency_key="once")

    results = storm(16, lambda _: Metering().reserve(wid, Cost(Decimal(3)), request, "chat", "ann"))

    assert kinds(results) == Counter({"Reservation": 16})
    assert len({r.reservation_id for r in results if isinstance(r, Reservation)}) == 1
    item = rooms_are_exact(ledger, wid)
    assert len(item["hd"]) == 1 and item["held"] == 3
    assert budget_of(item, "ann")["r"] == 2
    ledger.check(wid)


def test_concurrent_retries_of_a_budgeted_charge_charge_once(
    metering: Service, ledger: Any
) -> None:
    wid = _wallet(metering, "100")
    Controls().set_member_budget(wid, "ann", Decimal(5))
    request = Request(request_hash="charge-body", idempotency_key="once")

    results = storm(16, lambda _: Metering().charge(wid, Cost(Decimal(4)), request, "chat", "ann"))

    assert kinds(results) == Counter({"Charge": 16})
    charges = [r for r in results if isinstance(r, Charge)]
    assert len({c.charge_id for c in charges}) == 1
    assert sum(1 for c in charges if not c.replayed) == 1
    item = rooms_are_exact(ledger, wid)
    assert (item["used"], budget_of(item, "ann")["u"]) == (4, 4)
    ledger.check(wid)
