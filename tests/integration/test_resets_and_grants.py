"""Resets and grants under concurrency, on DynamoDB Local (docs/domain.md;
docs/data-model.md, billing periods and grants).

Storms of 16-32 threads call the service (``Metering`` and the billing use cases) directly,
released together by a barrier; the promo-code storm also runs through the real HTTP handler in
worker processes (``lambdas``). The service's clock is frozen at a fixed date and moved by
hand, so periods end and grants expire without waiting (threads share it). Where a race has
one outcome the arithmetic decides, it is asserted exactly; where it depends on who came
first, the test asserts what every outcome must keep: nothing granted twice, nothing lost, no
overspend, and the stream-projected ledger checked against the invariants (``Ledger.check``).

Some races are too narrow for a storm to hit reliably: those tests put the racing request
exactly between an operation's read and its write (``Between``), so each interleaving is
deterministic.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.billing.grants import Grants, Voided
from credit_meter.billing.periods import Advanced, Periods
from credit_meter.billing.promotions import PromoCode, Promotions
from credit_meter.billing.referrals import Referrals, Referred
from credit_meter.billing.transfers import Transferred, Transfers
from credit_meter.core import clock
from credit_meter.core.errors import Conflict, Contention, InsufficientCredits
from credit_meter.core.wallets import Charge, Ended, Granted, Reservation
from credit_meter.metering.service import Cost, Metering, Request
from credit_meter.storage import items as stored
from credit_meter.storage import store, wallet_record
from credit_meter.storage.store import Store, Update
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, wait_for
from tests.services import Service
from tests.storms import kinds, storm

pytestmark = pytest.mark.integration

ZERO = Decimal(0)


# -- time ------------------------------------------------------------------------------------


@pytest.fixture
def now() -> Iterator[FakeClock]:
    """The service's clock, frozen and moved by hand (one for every thread)."""
    with frozen_clock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC)) as fake:
        yield fake


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- storms ----------------------------------------------------------------------------------


def codes(results: list[Any]) -> Counter[str]:
    """Each result's class, and a conflict's problem code."""
    return Counter(
        f"Conflict:{r.code}" if isinstance(r, Conflict) else type(r).__name__ for r in results
    )


class Busy:
    """Counts the 503s callers met and retried (with the same request, as a client would)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retried = 0

    def call[T](self, call: Callable[[], T], seed: int = 0) -> T:
        rng = random.Random(seed)
        for attempt in range(40):
            try:
                return call()
            except Contention:
                with self.lock:
                    self.retried += 1
                time.sleep(rng.uniform(0, 0.005 * (attempt + 1)))
        raise AssertionError("the request kept answering 503 contention")


def req(key: str | None = None, body: str | None = None) -> Request:
    """A request: with an Idempotency-Key, its body digest follows ``body`` (default: the key)."""
    if key is None:
        return Request(request_hash=uuid.uuid4().hex)
    digest = hashlib.sha256((body or key).encode()).hexdigest()
    return Request(request_hash=digest, idempotency_key=key)


class Between(Store):
    """A store that runs ``racer`` once, just before this operation's first write: the racing
    request lands exactly between the operation's read and its conditional write."""

    def __init__(self, racer: Callable[[], Any]) -> None:
        super().__init__()
        self.racer: Callable[[], Any] | None = racer
        self.raced: Any = None

    def _race(self) -> None:
        if self.racer is not None:
            racer, self.racer = self.racer, None
            self.raced = racer()

    def update(self, update: Update) -> None:
        self._race()
        super().update(update)

    def transact(self, *writes: Any) -> None:
        self._race()
        super().transact(*writes)


# -- wallets and the ledger ------------------------------------------------------------------


def new_wallet(metering: Service, plan: str = "starter", **kwargs: Any) -> str:
    wid = f"rg-{uuid.uuid4().hex[:12]}"
    created, _ = metering.put_wallet(wid, plan, **kwargs)
    assert created
    return wid


def by_type(entries: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["type"] == kind]


def total(entries: list[dict[str, Any]]) -> Decimal:
    return sum((e["credits"] for e in entries), ZERO)


def wallet_changes(ledger: Any, wallet_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every write to the wallet item the stream carried, as (old image, new image)."""
    pk = stored.wallet_pk(wallet_id)
    changes = []
    for record in ledger.records:
        change = record["dynamodb"]
        if change["Keys"]["pk"]["S"] != pk or change["Keys"]["sk"]["S"] != wallet_record.WALLET_SK:
            continue
        old = store.from_item(change.get("OldImage", {}))
        changes.append((old, store.from_item(change["NewImage"])))
    return changes


def assert_accepted_with_credits(ledger: Any, wallet_id: str, debits: tuple[str, ...]) -> int:
    """docs/domain.md invariant 1, from the stream: every write that opened a hold, or posted one of
    ``debits``, left ``available >= 0`` (it was accepted with enough credits). Returns how
    many such writes there were."""
    accepted = 0
    for old, new in wallet_changes(ledger, wallet_id):
        opened = set(new.get("hd", {})) - set(old.get("hd", {}))
        posted = int(new["seq"]) > int(old.get("seq", 0)) and any(
            p["ty"] in debits and p["d"] < 0 for p in new.get("posts") or []
        )
        if opened or posted:
            accepted += 1
            assert new["avail"] >= 0, f"accepted with {new['avail']} available: {new['posts']}"
    return accepted


def due_now(metering: Service) -> set[str]:
    return set(metering.due_wallets())


# -- 1. the reset, invoked twice and concurrently ----------------------------------------------


def sqs_event(*wallet_ids: str) -> dict[str, Any]:
    """An SQS batch as the reset queue delivers it (one message per wallet)."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{n}",
                "body": json.dumps({"wallet_id": w, "scheduled_time": "2026-02-15T00:05:00Z"}),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1771113900000",
                    "SenderId": "AROAEXAMPLEID:credit-meter-reset-dispatcher",
                    "ApproximateFirstReceiveTimestamp": "1771113900120",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:credit-meter-ResetQueue",
                "awsRegion": "us-east-1",
            }
            for n, w in enumerate(wallet_ids)
        ]
    }


@pytest.mark.parametrize(
    ("created", "anchor", "reset_at", "period"),
    [
        pytest.param(
            utc(2026, 1, 15, 10),
            None,
            utc(2026, 2, 15, 0, 0, 1),
            (utc(2026, 2, 15), utc(2026, 3, 15)),
            id="mid-month",
        ),
        pytest.param(
            utc(2028, 1, 31, 10),
            31,
            utc(2028, 2, 29, 6),
            (utc(2028, 2, 29), utc(2028, 3, 31)),
            id="anchor-31-leap-february",
        ),
    ],
)
def test_concurrent_and_duplicate_resets_start_the_next_period_once(
    metering: Service,
    ledger: Any,
    now: FakeClock,
    created: datetime,
    anchor: int | None,
    reset_at: datetime,
    period: tuple[datetime, datetime],
) -> None:
    now.set(created)
    wid = new_wallet(metering, "pro", anchor_day=anchor)  # 2500 a month, rollover up to 1250
    pe = metering.get_wallet(wid).period_end
    # A promo that ends before the period does, a purchase that never expires.
    promo = metering.grant(
        wid, Decimal(100), "promo", req(), datetime.fromtimestamp(pe - 86400, UTC), priority=15
    )
    metering.grant(wid, Decimal(300), "purchase", req())
    metering.charge(wid, Cost(Decimal(1000)), req(), "agent")  # all from the allowance
    before = ledger.check(wid)
    old_monthly = next(e for e in before if e.get("source") == "monthly")["transaction_id"]
    assert metering.get_wallet(wid).balance == 1900
    assert wid not in due_now(metering)

    now.set(reset_at)
    assert wid in due_now(metering)
    results = storm(24, lambda _: Periods().advance(wid))

    assert kinds(results) == Counter({"Advanced": 24})
    done = [r for r in results if isinstance(r, Advanced) and r.reset]
    assert len(done) == 1, "the period was started more than once (or never)"
    assert (done[0].expired, done[0].granted) == (1600, 3750)
    assert all((r.expired, r.granted) == (0, 0) for r in results if r is not done[0])

    # A duplicate delivery of the reset message, twice, changes nothing.
    from monthly_reset.app import handler

    seq = ledger.wallet_item(wid)["seq"]
    for _ in range(2):
        assert handler(sqs_event(wid, wid), FakeContext()) == {"batchItemFailures": []}
    assert ledger.wallet_item(wid)["seq"] == seq

    wallet = metering.get_wallet(wid)
    start, end = (int(p.timestamp()) for p in period)
    assert (wallet.period_start, wallet.period_end) == (start, end)
    assert (wallet.plan, wallet.allowance, wallet.used) == ("pro", 2500, 0)
    assert wallet.balance == 1900 - 1600 + 3750
    assert sorted((b.bucket.source, b.remaining) for b in wallet.buckets) == [
        ("monthly", 2500),
        ("purchase", 300),
        ("rollover", 1250),
    ]
    entries = ledger.check(wid)
    posted = entries[len(before) :]
    assert sorted((e["type"], e.get("source"), e["credits"]) for e in posted) == [
        ("expire", "monthly", -1500),
        ("expire", "promo", -100),
        ("grant", "monthly", 2500),
        ("grant", "rollover", 1250),
    ]
    expired_buckets = {e["bucket_id"] for e in by_type(posted, "expire")}
    assert expired_buckets == {old_monthly, promo.grant_id}
    assert posted[-1]["balance_after"] == wallet.balance
    assert ledger.wallet_item(wid)["due_at"] == end
    assert wid not in due_now(metering)

    # Much later (a missed month): one reset to the current period, not one per month missed.
    now.set(period[1] + timedelta(days=40))
    assert storm(16, lambda _: Periods().advance(wid).reset).count(True) == 1
    grants = by_type(ledger.check(wid), "grant")
    assert [g["source"] for g in grants].count("monthly") == 3


# -- 2. the reset racing reservations, commits, releases and charges ----------------------------


@dataclass
class Tally:
    """What a storm's accepted debits add up to (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    charged: dict[str, Decimal] = field(default_factory=dict)  # transaction id -> credits
    status: dict[str, str] = field(default_factory=dict)
    excess: Decimal = ZERO  # Σ of what commits took beyond their holds
    refused: int = 0
    across: int = 0  # holds opened before the reset and ended after it

    def add(self, tid: str, credits: Decimal, status: str, excess: Decimal = ZERO) -> None:
        with self.lock:
            assert tid not in self.charged, f"{tid} accepted twice"
            self.charged[tid] = credits
            self.status[tid] = status
            self.excess += excess


def end_hold(
    service: Service, wid: str, hold: Reservation, rng: random.Random, tally: Tally
) -> None:
    """Commit (for less, exactly, more, or the held amount) or release a hold; tally it."""
    way = rng.choice(["less", "exact", "more", "release", "default"])
    if way == "release":
        ended = service.release(wid, hold.reservation_id, req())
        assert (ended.status, ended.charged, ended.released) == ("released", 0, hold.credits)
        tally.add(ended.reservation_id, ZERO, "released")
        return
    actual = {
        "less": max(ZERO, hold.credits - rng.randint(1, 3)),
        "exact": hold.credits,
        "more": hold.credits + rng.randint(1, 3),
        "default": None,
    }[way]
    ended = service.commit(wid, hold.reservation_id, Cost(actual), req())
    expected = hold.credits if actual is None else actual
    assert (ended.status, ended.charged) == ("committed", expected)
    assert ended.released == max(ZERO, hold.credits - expected)
    tally.add(ended.reservation_id, expected, "committed", max(ZERO, expected - hold.credits))


def test_reset_racing_reservations_commits_and_charges_loses_and_doubles_nothing(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    now.set(utc(2026, 3, 10, 12))
    wid = new_wallet(metering, "starter")  # 500 a month, no rollover
    metering.grant(wid, Decimal(100), "purchase", req())
    initial = Decimal(600)
    pe = metering.get_wallet(wid).period_end
    now.set(pe - 60)  # a minute before the period ends: holds opened now outlive it
    debitors, resetters, rounds = 20, 8, 6
    tally = Tally()
    lock = threading.Lock()
    past_round: list[int] = []
    boundary = threading.Event()  # the clock has passed the period's end
    reset_done = threading.Event()
    finished: list[int] = []

    def debits(seed: int) -> None:
        rng = random.Random(seed)
        service = Service()
        try:  # a hold opened in the old period, ended only once the reset is done
            across: Reservation | None = service.reserve(
                wid, Cost(Decimal(rng.randint(1, 6))), req(), "agent", f"m{seed}"
            )
        except InsufficientCredits:
            across = None
        for n in range(rounds):
            if n == 2:
                with lock:
                    past_round.append(seed)
                    if len(past_round) == debitors // 2:
                        now.set(pe + 30)  # a third of the way through the storm, it ends
                        boundary.set()
            amount = Decimal(rng.randint(1, 80)) / 4
            try:
                if rng.random() < 0.3:
                    charge = service.charge(wid, Cost(amount), req(), "image", f"m{seed}")
                    tally.add(charge.charge_id, amount, "posted")
                    continue
                hold = service.reserve(wid, Cost(amount), req(), "chat", f"m{seed}")
            except InsufficientCredits:
                with tally.lock:
                    tally.refused += 1
                continue
            end_hold(service, wid, hold, rng, tally)
        if across is not None:
            wait_for(reset_done, "the resetters did not finish")
            end_hold(service, wid, across, rng, tally)
            with tally.lock:
                tally.across += 1

    def resets(seed: int) -> list[Advanced]:
        wait_for(boundary, "the storm did not reach the period's end")
        rng = random.Random(seed)
        done = []
        for _ in range(3):
            done.append(Periods().advance(wid))
            time.sleep(rng.uniform(0, 0.01))
        with lock:
            finished.append(seed)
            if len(finished) == resetters:
                reset_done.set()
        return done

    results = storm(
        debitors + resetters,
        lambda i: debits(i) if i < debitors else resets(i),
    )

    assert kinds(results[:debitors]) == Counter({"NoneType": debitors})
    advanced = [a for r in results[debitors:] for a in (r if isinstance(r, list) else [r])]
    assert kinds(advanced) == Counter({"Advanced": resetters * 3})
    assert [a.reset for a in advanced].count(True) == 1, "the period was reset more than once"
    assert tally.across > 0 and tally.refused > 0

    wallet = metering.get_wallet(wid)
    assert wallet.period_start == pe
    assert (wallet.held, wallet.available) == (0, wallet.balance)

    entries = ledger.check(wid)
    grants, expires = by_type(entries, "grant"), by_type(entries, "expire")
    debited = by_type(entries, "reservation") + by_type(entries, "charge")
    assert len(entries) == len(grants) + len(expires) + len(debited)
    # Granted: the first allowance, the purchase and ONE new allowance; no rollover on starter.
    assert sorted((g["source"], g["credits"]) for g in grants) == [
        ("monthly", 500),
        ("monthly", 500),
        ("purchase", 100),
    ]
    assert len({g["transaction_id"] for g in grants}) == 3
    # Expired: only what was left of the old allowance (in steps when holds open at the reset
    # kept part of it), each step once.
    first_allowance = grants[0]["transaction_id"]
    assert {e["bucket_id"] for e in expires} <= {first_allowance}
    assert len({e["transaction_id"] for e in expires}) == len(expires)
    assert 0 <= -total(expires) <= 500
    # Every accepted debit posted once, as accepted.
    posted = {e["transaction_id"]: e for e in debited}
    assert set(posted) == set(tally.charged)
    for tid, credits in tally.charged.items():
        assert (posted[tid]["credits"], posted[tid]["status"]) == (-credits, tally.status[tid])
    charged = sum(tally.charged.values(), ZERO)
    assert wallet.balance == initial + 500 + total(expires) - charged
    # No overspend: below zero only by what commits took beyond their holds.
    assert wallet.balance >= -tally.excess
    assert assert_accepted_with_credits(ledger, wid, ("charge",)) > 0
    # Usage counted in the new period is the new period's: never more than all of it.
    assert 0 <= wallet.used <= charged


# -- 3. promo codes: a redemption storm ------------------------------------------------------


def create_promo(metering: Service, credits: str, cap: int | None) -> str:
    code = f"STORM{uuid.uuid4().hex[:8].upper()}"
    created, _ = metering.create_promo(
        PromoCode(
            code=code,
            credits=Decimal(credits),
            expires_at=None,
            credits_expire_at=None,
            credits_expire_in_days=30,
            max_redemptions=cap,
            redeemed=0,
            created_at=int(clock.now_ts() * 1000),
        )
    )
    assert created
    return code


def promo_item(ledger: Any, code: str) -> dict[str, Any]:
    response = ledger.client.get_item(
        TableName=ledger.table,
        Key={k: {"S": v} for k, v in stored.promo_key(code).items()},
        ConsistentRead=True,
    )
    return store.from_item(response["Item"])


def test_promo_redemption_storm_respects_the_cap_and_once_per_wallet(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    cap = 10
    code = create_promo(metering, "25", cap)
    wallets = [new_wallet(metering, "free") for _ in range(20)]
    # 20 wallets once each, the first wallet 6 more times, and the second 4 more times with
    # the Idempotency-Key of its first request (a client's retries), all at once.
    callers = wallets + [wallets[0]] * 6 + [wallets[1]] * 4
    keyed = {1, *range(len(wallets) + 6, len(callers))}

    def redeem(i: int) -> Granted:
        request = req(f"redeem-{code}") if i in keyed else req()
        return Promotions().redeem(callers[i], code, request)

    results = storm(len(callers), redeem)

    outcome = codes(results)
    assert set(outcome) <= {
        "Granted",
        "Conflict:promo-code-exhausted",
        "Conflict:promo-code-already-redeemed",
    }, outcome
    retried = [results[i] for i in sorted(keyed)]  # one request sent 5 times: one answer
    if isinstance(retried[0], Granted):
        assert all(r == retried[0] for r in retried), retried
    else:
        assert all(isinstance(r, Conflict) and r.code == "promo-code-exhausted" for r in retried)
    grants = {
        r.grant_id: w for w, r in zip(callers, results, strict=True) if isinstance(r, Granted)
    }
    assert len(grants) == cap, outcome
    winners = list(grants.values())
    assert len(set(winners)) == cap, "a wallet redeemed the code twice"
    assert promo_item(ledger, code)["redeemed"] == cap

    for result in results:
        if isinstance(result, Granted):
            assert (result.credits, result.source) == (25, "promo")
            assert result.expires_at == int(now.t) + 30 * 86400
    for wid in wallets:
        entries = ledger.check(wid)
        promos = [e for e in entries if e.get("source") == "promo"]
        assert len(promos) == (1 if wid in winners else 0)
        assert metering.get_wallet(wid).balance == 50 + (25 if wid in winners else 0)

    # The storm is over: a latecomer is refused, the count stays.
    late = new_wallet(metering, "free")
    with pytest.raises(Conflict) as refused:
        metering.redeem(late, code, req())
    assert refused.value.code == "promo-code-exhausted"
    assert promo_item(ledger, code)["redeemed"] == cap


def test_promo_redemption_storm_over_http(lambdas: Any, shared_ledger: Any) -> None:
    cap = 3
    code = f"HTTP{uuid.uuid4().hex[:8].upper()}"
    status, promo = lambdas.call(
        "POST", "/v1/promo-codes", {"code": code, "credits": "7.5", "max_redemptions": cap}
    )
    assert status == 201, promo
    wallets = [f"rgh-{uuid.uuid4().hex[:10]}" for _ in range(10)]
    for wid in wallets:
        assert lambdas.call("PUT", f"/v1/wallets/{wid}", {"plan": "free"})[0] == 201
    callers = wallets + [wallets[0]] * 6

    answers = lambdas.call_all(
        [
            {"method": "POST", "path": f"/v1/wallets/{w}/redeem", "body": {"code": code.lower()}}
            for w in callers
        ]
    )

    statuses = Counter(status for status, _ in answers)
    assert statuses == Counter({201: cap, 409: len(callers) - cap}), answers
    problems = {body["type"] for status, body in answers if status == 409}
    assert problems <= {
        "/problems/promo-code-exhausted",
        "/problems/promo-code-already-redeemed",
    }, problems
    winners = [w for w, (s, _) in zip(callers, answers, strict=True) if s == 201]
    assert len(set(winners)) == cap
    for wid in set(winners):
        _, wallet = lambdas.call("GET", f"/v1/wallets/{wid}")
        assert wallet["balance"] == "57.5"
        shared_ledger.check(wid)


# -- 4. referrals ----------------------------------------------------------------------------


def test_referral_storm_rewards_the_referrer_at_most_ten_times(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    busy = Busy()
    referrer = new_wallet(metering, "free")
    referees = [new_wallet(metering, "free") for _ in range(15)]
    callers = referees + referees[:6]  # six referees are referred twice, concurrently

    results = storm(
        len(callers), lambda i: busy.call(lambda: Referrals().refer(callers[i], referrer), i)
    )

    assert kinds(results) == Counter({"Referred": len(callers)})
    first: dict[str, Referred] = {}
    for wid, result in zip(callers, results, strict=True):
        assert isinstance(result, Referred)
        assert first.setdefault(wid, result) == result, "a duplicate got another answer"
    rewarded = [r for r in first.values() if r.referrer_grant is not None]
    assert len(rewarded) == 10
    assert ledger.wallet_item(referrer)["rfc"] == 10

    referrer_grants = by_type(ledger.check(referrer), "grant")
    assert Counter(g["source"] for g in referrer_grants) == Counter({"monthly": 1, "referral": 10})
    assert {g["transaction_id"] for g in referrer_grants if g["source"] == "referral"} == {
        r.referrer_grant.grant_id for r in rewarded if r.referrer_grant is not None
    }
    assert metering.get_wallet(referrer).balance == 50 + 10 * 500
    for wid in referees:
        grants = [g for g in by_type(ledger.check(wid), "grant") if g["source"] == "referral"]
        assert [(g["transaction_id"], g["credits"]) for g in grants] == [
            (first[wid].grant.grant_id, 500)
        ]
        assert ledger.wallet_item(wid)["rby"]["w"] == referrer

    # One wallet referred by two referrers at once: exactly one of them wins.
    a, b, contested = (new_wallet(metering, "free") for _ in range(3))
    results = storm(
        16,
        lambda i: busy.call(lambda: Referrals().refer(contested, a if i % 2 else b), i),
    )

    outcome = codes(results)
    assert outcome == Counter({"Referred": 8, "Conflict:already-referred": 8}), outcome
    winner = next(r for r in results if isinstance(r, Referred)).referrer_wallet_id
    loser = b if winner == a else a
    assert all(r.referrer_wallet_id == winner for r in results if isinstance(r, Referred))
    assert ledger.wallet_item(contested)["rby"]["w"] == winner
    assert [g["source"] for g in by_type(ledger.check(contested), "grant")] == [
        "monthly",
        "referral",
    ]
    assert [g["source"] for g in by_type(ledger.check(winner), "grant")] == [
        "monthly",
        "referral",
    ]
    assert [g["source"] for g in by_type(ledger.check(loser), "grant")] == ["monthly"]
    assert "rfc" not in ledger.wallet_item(loser)


# -- 5. transfers ----------------------------------------------------------------------------


def test_transfer_storm_never_overspends_and_moves_each_key_once(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    busy = Busy()
    source = new_wallet(metering, "enterprise", allowance=Decimal(100))
    targets = [new_wallet(metering, "enterprise", allowance=Decimal(40)) for _ in range(4)]
    everyone = [source, *targets]
    before = sum((metering.get_wallet(w).balance for w in everyone), ZERO)
    out_keys = [f"out-{n}-{uuid.uuid4().hex[:6]}" for n in range(12)]
    # 12 transfers out of the source (13 each: more than it will ever have), each sent twice
    # at once with the same Idempotency-Key; 6 transfers into it (5 each) from the targets.
    jobs: list[tuple[str, str, Decimal, str]] = []
    for n, key in enumerate(out_keys):
        jobs += [(source, targets[n % 4], Decimal(13), key)] * 2
    jobs += [
        (targets[n % 4], source, Decimal(5), f"in-{n}-{uuid.uuid4().hex[:6]}") for n in range(6)
    ]

    def send(i: int) -> Transferred:
        frm, to, credits, key = jobs[i]
        return busy.call(lambda: Transfers().transfer(frm, to, credits, "storm", req(key)), i)

    results = storm(len(jobs), send)

    assert set(kinds(results)) <= {"Transferred", "InsufficientCredits"}, kinds(results)
    moved: dict[str, Transferred] = {}
    for (_frm, _to, _credits, key), result in zip(jobs, results, strict=True):
        if isinstance(result, Transferred):
            same = moved.setdefault(key, result)
            assert (same.transfer_id, same.grant_id) == (result.transfer_id, result.grant_id)
    for key in out_keys:
        answers = [r for (*_, k), r in zip(jobs, results, strict=True) if k == key]
        fresh = [r for r in answers if isinstance(r, Transferred) and not r.replayed]
        assert len(fresh) <= 1, f"{key} moved credits twice"
    assert all(key in moved for key in {j[3] for j in jobs} - set(out_keys))  # inflows pass
    assert any(isinstance(r, InsufficientCredits) for r in results), "the source never ran dry"

    # Conserved, and every transfer posted exactly once on each side.
    after = sum((metering.get_wallet(w).balance for w in everyone), ZERO)
    assert after == before
    entries = {w: ledger.check(w) for w in everyone}
    debits = {e["transaction_id"]: e for w in everyone for e in by_type(entries[w], "transfer")}
    credits = {e["transaction_id"]: e for w in everyone for e in by_type(entries[w], "grant")}
    assert sum(len(by_type(entries[w], "transfer")) for w in everyone) == len(moved)
    for t in moved.values():
        assert debits[t.transfer_id]["credits"] == -t.credits
        assert credits[t.grant_id]["credits"] == t.credits
        assert credits[t.grant_id]["source"] == "transfer"
    out = sum((t.credits for k, t in moved.items() if k in out_keys), ZERO)
    assert metering.get_wallet(source).balance == 100 + 30 - out
    # Never overspent: each debit left the source at or above zero, accepted with credits.
    assert all(e["balance_after"] >= 0 for e in by_type(entries[source], "transfer"))
    assert assert_accepted_with_credits(ledger, source, ("transfer",)) == len(
        by_type(entries[source], "transfer")
    )
    # A later retry of any key answers its first result and moves nothing.
    seq = ledger.wallet_item(source)["seq"]
    for key, t in moved.items():
        frm, to, amount, _ = next(j for j in jobs if j[3] == key)
        again = metering.transfer(frm, to, amount, "storm", req(key))
        assert (again.transfer_id, again.grant_id, again.replayed) == (
            t.transfer_id,
            t.grant_id,
            True,
        )
    assert ledger.wallet_item(source)["seq"] == seq


# -- 6. voiding a grant while charges draw on the wallet ---------------------------------------


@pytest.mark.parametrize("when", ["together", "after-the-grant-is-touched"])
def test_void_racing_charges_takes_the_grant_whole_or_refuses(
    metering: Service, ledger: Any, now: FakeClock, when: str
) -> None:
    wid = new_wallet(metering, "enterprise", allowance=Decimal(100))  # spent first
    promo = metering.grant(wid, Decimal(50), "promo", req())  # never expires: spent after
    ledger.drain()  # the grant's line is listed
    chargers, voiders, attempts = 20, 4, 9  # 180 credits asked of 150
    lock = threading.Lock()
    charged: list[Decimal] = []
    touched = threading.Event()  # charges have drawn on the promo grant

    def charge(seed: int) -> int:
        service, accepted = Service(), 0
        for _ in range(attempts):
            try:
                service.charge(wid, Cost(Decimal(1)), req(), "chat", f"m{seed}")
            except InsufficientCredits:
                continue
            accepted += 1
            with lock:
                charged.append(Decimal(1))
                if sum(charged) > 100:
                    touched.set()
        return accepted

    def void(seed: int) -> Voided:
        if when == "after-the-grant-is-touched":
            wait_for(touched, "the charges did not reach the promo grant")
        else:
            time.sleep(random.Random(seed).uniform(0, 0.02))
        return Grants().void_grant(wid, promo.grant_id)

    results = storm(chargers + voiders, lambda i: charge(i) if i < chargers else void(i))

    voids = results[chargers:]
    outcome = codes(voids)
    assert set(outcome) <= {
        "Voided",
        "Conflict:grant-in-use",
        "Conflict:grant-not-voidable",  # a duplicate void that ran after the winner's
    }, outcome
    entries = ledger.check(wid)
    voided = by_type(entries, "void")
    spent = sum(charged, ZERO)
    assert sum(n for n in results[:chargers] if isinstance(n, int)) == spent
    if voided:  # the void won: the grant went whole, before any charge reached it
        assert when == "together"
        assert [(e["bucket_id"], e["credits"]) for e in voided] == [(promo.grant_id, -50)]
        assert outcome["Voided"] >= 1
        at = voided[0]["seq"]
        assert -total([e for e in by_type(entries, "charge") if e["seq"] < at]) <= 100
        assert spent == 100
    else:  # the charges reached the grant first: the void was refused, the grant spent
        assert outcome["Conflict:grant-in-use"] >= 1
        assert outcome["Voided"] == 0
        assert spent == 150
    wallet = metering.get_wallet(wid)
    assert wallet.balance == 150 - spent - (50 if voided else 0) == 0
    assert -total(by_type(entries, "charge")) == spent


def test_a_charge_between_the_voids_read_and_write_into_the_grant_refuses_the_void(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "enterprise", allowance=Decimal(100))
    promo = metering.grant(wid, Decimal(50), "promo", req())
    metering.charge(wid, Cost(Decimal(95)), req(), "chat")

    racer = Between(lambda: Metering().charge(wid, Cost(Decimal(10)), req(), "chat"))
    with pytest.raises(Conflict) as refused:
        Grants(store=racer).void_grant(wid, promo.grant_id)

    assert isinstance(racer.raced, Charge)
    assert refused.value.code == "grant-in-use"
    assert metering.get_wallet(wid).balance == 45
    assert not by_type(ledger.check(wid), "void")


def test_a_hold_between_the_voids_read_and_write_keeps_the_grant(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "enterprise", allowance=Decimal(100))
    promo = metering.grant(wid, Decimal(50), "promo", req())

    racer = Between(lambda: Metering().reserve(wid, Cost(Decimal(120)), req(), "agent"))
    with pytest.raises(Conflict) as refused:
        Grants(store=racer).void_grant(wid, promo.grant_id)

    assert isinstance(racer.raced, Reservation)
    assert refused.value.code == "grant-in-use"
    ended = metering.commit(wid, racer.raced.reservation_id, Cost(None), req())
    assert (ended.charged, metering.get_wallet(wid).balance) == (120, 30)
    assert not by_type(ledger.check(wid), "void")


def test_voiding_twice_answers_the_same_before_the_ledger_catches_up(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "enterprise", allowance=Decimal(100))
    promo = metering.grant(wid, Decimal(50), "promo", req())
    ledger.drain()

    first = metering.void_grant(wid, promo.grant_id)
    again = metering.void_grant(wid, promo.grant_id)  # a client's retry, at once

    assert first == again == Voided(promo.grant_id, Decimal(50))


# -- 7. a promotional grant that expires mid-period -------------------------------------------


def test_a_grant_expiring_mid_period_is_due_then_expired_once(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "starter")
    other = new_wallet(metering, "starter")  # nothing to expire: never due before its end
    pe = metering.get_wallet(wid).period_end
    expiry = datetime.fromtimestamp(now.t + 3 * 86400, UTC)
    promo = metering.grant(wid, Decimal(100), "promo", req(), expiry)
    metering.charge(wid, Cost(Decimal(30)), req(), "chat")  # from the promo: it expires first
    assert [(b.bucket.source, b.remaining) for b in metering.get_wallet(wid).buckets] == [
        ("promo", 70),
        ("monthly", 500),
    ]
    assert ledger.wallet_item(wid)["due_at"] == int(expiry.timestamp())

    now.set(expiry - timedelta(seconds=1))
    assert wid not in due_now(metering)
    assert not Periods().advance(wid).expired
    now.set(expiry)
    assert due_now(metering) & {wid, other} == {wid}

    results = storm(16, lambda _: Periods().advance(wid))

    assert kinds(results) == Counter({"Advanced": 16})
    assert not any(r.reset for r in results if isinstance(r, Advanced))
    assert sorted(r.expired for r in results if isinstance(r, Advanced)) == [0] * 15 + [70]
    wallet = metering.get_wallet(wid)
    assert wallet.balance == 500
    assert [(b.bucket.source, b.remaining) for b in wallet.buckets] == [("monthly", 500)]
    entries = ledger.check(wid)
    assert [(e["bucket_id"], e["credits"]) for e in by_type(entries, "expire")] == [
        (promo.grant_id, -70)
    ]
    assert wallet.period_end == pe
    assert ledger.wallet_item(wid)["due_at"] == pe
    assert wid not in due_now(metering)
    lines = {g.grant_id: g for g in metering.grants(wid, 10, None)[0]}
    assert (lines[promo.grant_id].status, lines[promo.grant_id].remaining) == ("expired", 0)


# -- deterministic interleavings of the reset with other writes ---------------------------------


def test_a_charge_between_the_expiry_read_and_write_cannot_spend_expiring_credits_twice(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "enterprise", allowance=Decimal(0))
    expiry = datetime.fromtimestamp(now.t + 86400, UTC)
    metering.grant(wid, Decimal(100), "promo", req(), expiry)
    now.set(expiry + timedelta(minutes=1))  # expired; the reset job has not run yet

    racer = Between(lambda: Metering().charge(wid, Cost(Decimal(100)), req(), "chat"))
    done = Periods(store=racer).advance(wid)

    ledger.check(wid)
    wallet = metering.get_wallet(wid)
    charged = racer.raced.charged if isinstance(racer.raced, Charge) else ZERO
    # 100 credits were granted: charged and expired together, never more. (Serially the charge
    # came first and spent them all, so nothing was left to expire.)
    assert (charged + done.expired, wallet.balance >= 0) == (100, True), (
        f"charged {charged}, expired {done.expired}: balance {wallet.balance}"
    )


def test_a_charge_between_the_reset_read_and_write_cannot_overspend(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "starter")
    pe = metering.get_wallet(wid).period_end
    metering.grant(wid, Decimal(100), "promo", req(), datetime.fromtimestamp(pe, UTC))
    now.set(pe + 60)

    racer = Between(lambda: Metering().charge(wid, Cost(Decimal(600)), req(), "agent"))
    done = Periods(store=racer).advance(wid)

    assert done.reset and isinstance(racer.raced, Charge)
    ledger.check(wid)
    wallet = metering.get_wallet(wid)
    # Serially, either the charge came first (nothing left to expire: 500 new) or the reset
    # did (the charge refused: 500 available). Never below zero.
    assert wallet.balance >= 0, f"expired {done.expired}, balance {wallet.balance}"


@pytest.mark.parametrize("change", ["downgrade", "cancel-downgrade"])
def test_a_plan_change_between_the_reset_read_and_write_is_not_lost(
    metering: Service, ledger: Any, now: FakeClock, change: str
) -> None:
    """A plan change bumps the bucket version, so a reset that read the wallet before it
    reads again and starts the next period on the plan asked for."""
    wid = new_wallet(metering, "pro")
    if change == "cancel-downgrade":
        metering.put_wallet(wid, "starter")
        assert metering.get_wallet(wid).pending_plan == "starter"
    pe = metering.get_wallet(wid).period_end
    now.set(pe + 60)
    wanted = "starter" if change == "downgrade" else "pro"

    racer = Between(lambda: metering.put_wallet(wid, wanted))
    # The plan change finds the period ended and runs the reset itself first; the reset it
    # raced then reads again and has nothing left to do. Either way: one reset.
    outer = Periods(store=racer).advance(wid)
    assert racer.raced[0] is False
    assert metering.get_wallet(wid).period_start == pe
    assert outer.reset is False

    wallet = metering.get_wallet(wid)
    ledger.check(wid)
    # The change applies now or at the next reset; it is never dropped.
    assert wanted in (wallet.plan, wallet.pending_plan), (wallet.plan, wallet.pending_plan)
    if change == "cancel-downgrade":
        assert (wallet.plan, wallet.pending_plan) == ("pro", None)


def test_holds_open_across_a_reset_commit_without_overdrawing(
    metering: Service, ledger: Any, now: FakeClock
) -> None:
    wid = new_wallet(metering, "starter")
    pe = metering.get_wallet(wid).period_end
    metering.grant(wid, Decimal(100), "promo", req(), datetime.fromtimestamp(pe, UTC))
    holds = storm(
        16, lambda i: Metering().reserve(wid, Cost(Decimal("37.5")), req(), "agent", f"m{i}")
    )
    assert kinds(holds) == Counter({"Reservation": 16})  # 600 held, 0 available
    rids = [h.reservation_id for h in holds if isinstance(h, Reservation)]
    now.set(pe + 60)

    assert storm(16, lambda _: Periods().advance(wid).reset).count(True) == 1
    ended = storm(
        16,
        lambda i: Metering().commit(wid, rids[i], Cost(None), req()),
    )

    assert kinds(ended) == Counter({"Ended": 16})
    assert all(isinstance(e, Ended) and e.charged == Decimal("37.5") for e in ended)
    ledger.check(wid)
    wallet = metering.get_wallet(wid)
    assert wallet.held == 0
    assert wallet.balance >= 0, f"commits within their holds left {wallet.balance}"
