"""Concurrency storms against ONE wallet on DynamoDB Local (docs/domain.md;
the write conditions of docs/data-model.md).

Threads call the service (``Metering``) directly, released together by a barrier; the HTTP
storm runs the real handler in worker processes (``lambdas``), like concurrent Lambda
invocations. Exact outcomes are asserted where the arithmetic decides them, and every storm
ends with the projected ledger checked against the invariants (``Ledger.check``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.core.errors import Contention, InsufficientCredits
from credit_meter.metering.service import Cost, Metering, Request
from tests.services import Service
from tests.storms import failures, kinds, storm

pytestmark = pytest.mark.integration

THREADS = 50


def _wallet(metering: Service, credits: str) -> str:
    wid = f"storm-{uuid.uuid4().hex[:10]}"
    metering.put_wallet(wid, "enterprise", Decimal(credits))
    return wid


def _req() -> Request:
    return Request(request_hash=uuid.uuid4().hex)


def test_reserve_storm_holds_exactly_what_the_balance_covers(
    metering: Service, ledger: Any
) -> None:
    wid = _wallet(metering, "20")

    results = storm(
        THREADS, lambda i: Metering().reserve(wid, Cost(Decimal(1)), _req(), "chat", f"m{i}")
    )

    assert kinds(results) == Counter({"Reservation": 20, "InsufficientCredits": 30})
    wallet = metering.get_wallet(wid)
    assert (wallet.balance, wallet.held, wallet.available) == (20, 20, 0)
    assert len(ledger.wallet_item(wid)["hd"]) == 20

    # Nothing is left for charges while every credit is held.
    refused = storm(THREADS, lambda i: Metering().charge(wid, Cost(Decimal(1)), _req(), "x"))
    assert kinds(refused) == Counter({"InsufficientCredits": THREADS})

    # Releasing them all together returns every credit, once.
    holds = [r for r in results if not isinstance(r, Exception)]
    ended = storm(len(holds), lambda i: Metering().release(wid, holds[i].reservation_id, _req()))
    assert kinds(ended) == Counter({"Ended": 20})
    wallet = metering.get_wallet(wid)
    assert (wallet.balance, wallet.held, wallet.available) == (20, 0, 20)
    entries = ledger.check(wid)
    assert Counter(e["status"] for e in entries) == Counter({"posted": 1, "released": 20})


def test_charge_storm_debits_exactly_the_balance(metering: Service, ledger: Any) -> None:
    wid = _wallet(metering, "20")

    results = storm(
        THREADS, lambda i: Metering().charge(wid, Cost(Decimal(1)), _req(), "image", f"m{i}")
    )

    assert kinds(results) == Counter({"Charge": 20, "InsufficientCredits": 30})
    wallet = metering.get_wallet(wid)
    assert (wallet.balance, wallet.held, wallet.available) == (0, 0, 0)
    entries = ledger.check(wid)
    charged = {r.charge_id for r in results if not isinstance(r, Exception)}
    assert {e["transaction_id"] for e in entries if e["type"] == "charge"} == charged
    assert min(e["balance_after"] for e in entries) == 0


def test_http_storm_through_concurrent_handler_invocations(
    lambdas: Any, shared_ledger: Any
) -> None:
    wid = f"storm-{uuid.uuid4().hex[:10]}"
    base = f"/v1/wallets/{wid}"
    assert lambdas.call("PUT", base, {"plan": "enterprise", "allowance": "20"})[0] == 201

    reserve = {
        "method": "POST",
        "path": f"{base}/reservations",
        "body": {"feature": "chat", "credits": "1"},
    }
    held = lambdas.call_all([reserve] * THREADS)

    assert Counter(code for code, _ in held) == Counter({201: 20, 402: 30})
    assert all(
        body["type"] == "/problems/insufficient-credits" for code, body in held if code == 402
    )
    charge = {
        "method": "POST",
        "path": f"{base}/charges",
        "body": {"feature": "chat", "credits": "1"},
    }
    assert {code for code, _ in lambdas.call_all([charge] * 10)} == {402}

    # Commit every hold at once: half for less than held, half for more (overdraft).
    rids = [body["reservation_id"] for code, body in held if code == 201]
    commits = lambdas.call_all(
        [
            {
                "method": "POST",
                "path": f"{base}/reservations/{rid}/commit",
                "body": {"credits": "0.5" if n % 2 else "1.5"},
            }
            for n, rid in enumerate(rids)
        ]
    )

    assert {code for code, _ in commits} == {200}
    _, wallet = lambdas.call("GET", base)
    assert (wallet["balance"], wallet["held"], wallet["available"]) == ("0", "0", "0")
    entries = shared_ledger.check(wid)
    assert len(entries) == 21


def test_commits_beyond_their_holds_overdraw_by_at_most_the_excess(
    metering: Service, ledger: Any
) -> None:
    wid = _wallet(metering, "20")
    holds = storm(20, lambda i: Metering().reserve(wid, Cost(Decimal(1)), _req(), "agent"))
    assert kinds(holds) == Counter({"Reservation": 20})

    # The work already happened: every commit succeeds, each 1.25 over its hold.
    commits = storm(
        20, lambda i: Metering().commit(wid, holds[i].reservation_id, Cost(Decimal("2.25")), _req())
    )

    assert kinds(commits) == Counter({"Ended": 20})
    wallet = metering.get_wallet(wid)
    assert (wallet.balance, wallet.held, wallet.available) == (-25, 0, -25)
    refused = storm(
        THREADS,
        lambda i: (
            Metering().reserve(wid, Cost(Decimal("0.000001")), _req(), "chat")
            if i % 2
            else Metering().charge(wid, Cost(Decimal("0.000001")), _req(), "chat")
        ),
    )
    assert kinds(refused) == Counter({"InsufficientCredits": THREADS})
    ledger.check(wid)

    # The next credit repays the overdraft first.
    metering.grant(wid, Decimal(30), "purchase", _req())
    wallet = metering.get_wallet(wid)
    assert (wallet.balance, wallet.available) == (5, 5)
    assert [(b.bucket.source, b.remaining) for b in wallet.buckets] == [("purchase", 5)]
    ledger.check(wid)


class Tally:
    """What a storm's accepted operations add up to (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.charged: dict[str, Decimal] = {}  # transaction id -> credits debited
        self.granted: dict[str, Decimal] = {}
        self.status: dict[str, str] = {}
        self.excess = Decimal(0)  # Σ of what commits took beyond their holds
        self.refused = 0
        self.contention = 0

    def add(self, tid: str, credits: Decimal, status: str, excess: Decimal = Decimal(0)) -> None:
        with self.lock:
            assert tid not in self.charged, f"{tid} accepted twice"
            self.charged[tid] = credits
            self.status[tid] = status
            self.excess += excess


def _debits(wid: str, tally: Tally, seed: int, rounds: int) -> None:
    """One caller's session: reservations ended every possible way, and one-shot charges.

    The first round reserves one credit and ends it the ``seed % 5``-th way, so that a storm
    of a few dozen sessions ends holds every way even when the wallet soon runs dry.
    """
    rng = random.Random(seed)
    service = Service()
    for n in range(rounds):
        amount = Decimal(1) if n == 0 else Decimal(rng.randint(1, 40)) / 4
        try:
            if n > 0 and rng.random() < 0.3:
                charge = service.charge(wid, Cost(amount), _req(), "image", f"m{seed}")
                tally.add(charge.charge_id, amount, "posted")
                continue
            hold = service.reserve(wid, Cost(amount), _req(), "chat", f"m{seed}")
        except InsufficientCredits:
            with tally.lock:
                tally.refused += 1
            continue
        ways = ["less", "exact", "more", "release", "default"]
        way = ways[seed % 5] if n == 0 else rng.choice(ways)
        if way == "release":
            ended = service.release(wid, hold.reservation_id, _req())
            tally.add(ended.reservation_id, Decimal(0), "released")
            continue
        actual = {
            "less": max(Decimal(0), amount - Decimal(rng.randint(1, 4)) / 4),
            "exact": amount,
            "more": amount + Decimal(rng.randint(1, 8)) / 4,
            "default": None,
        }[way]
        ended = service.commit(wid, hold.reservation_id, Cost(actual), _req())
        expected = amount if actual is None else actual
        assert ended.charged == expected
        assert ended.released == max(Decimal(0), amount - expected)
        tally.add(ended.reservation_id, expected, "committed", max(Decimal(0), expected - amount))


def _check_tally(
    metering: Service, ledger: Any, wid: str, initial: Decimal, tally: Tally
) -> list[dict[str, Any]]:
    wallet = metering.get_wallet(wid)
    balance = initial + sum(tally.granted.values()) - sum(tally.charged.values())
    assert wallet.balance == balance
    assert (wallet.held, wallet.available) == (0, balance)
    # No overspend: what was debited is covered by the credits, but for commit excesses.
    assert sum(tally.charged.values()) <= initial + sum(tally.granted.values()) + tally.excess
    assert wallet.balance >= -tally.excess

    entries = ledger.check(wid)
    posted = {e["transaction_id"]: e for e in entries[1:]}
    assert len(posted) == len(entries) - 1
    assert set(posted) == set(tally.charged) | set(tally.granted)
    for tid, credits in tally.charged.items():
        assert (posted[tid]["credits"], posted[tid]["status"]) == (-credits, tally.status[tid])
    for tid, credits in tally.granted.items():
        assert (posted[tid]["credits"], posted[tid]["type"]) == (credits, "grant")
    return entries


def test_mixed_storm_of_reserve_commit_release_and_charge_keeps_the_invariants(
    metering: Service, ledger: Any
) -> None:
    initial = Decimal(150)
    wid = _wallet(metering, str(initial))
    tally = Tally()

    results = storm(40, lambda i: _debits(wid, tally, seed=i, rounds=6))

    assert kinds(results) == Counter({"NoneType": 40}), failures(results)
    assert tally.refused > 0, "the storm never ran the wallet dry; give it less credit"
    assert tally.excess > 0 and any(s == "released" for s in tally.status.values())
    _check_tally(metering, ledger, wid, initial, tally)


def _grants(wid: str, tally: Tally, seed: int, count: int) -> None:
    rng = random.Random(seed)
    service = Service()
    now = datetime.now(UTC)
    for _ in range(count):
        credits = Decimal(rng.randint(1, 20))
        source = rng.choice(["promo", "purchase", "referral", "manual", "welcome"])
        expires = rng.choice([None, now + timedelta(days=rng.randint(1, 90))])
        priority = rng.choice([None, None, 0, 5, 50])
        for _attempt in range(20):  # a caller retries a 503 after a short pause
            try:
                granted = service.grant(wid, credits, source, _req(), expires, priority)
                break
            except Contention:
                with tally.lock:
                    tally.contention += 1
                time.sleep(rng.uniform(0, 0.05))
        else:
            raise AssertionError("grant kept failing with Contention")
        with tally.lock:
            tally.granted[granted.grant_id] = credits


def test_grants_racing_debits_keep_the_sum_and_the_buckets_right(
    metering: Service, ledger: Any
) -> None:
    initial = Decimal(10)
    wid = _wallet(metering, str(initial))
    tally = Tally()

    def work(i: int) -> None:
        if i % 3 == 0:
            _grants(wid, tally, seed=1000 + i, count=3)
        else:
            _debits(wid, tally, seed=i, rounds=5)

    results = storm(36, work)

    assert kinds(results) == Counter({"NoneType": 36}), failures(results)
    assert len(tally.granted) == 36
    _check_tally(metering, ledger, wid, initial, tally)
    wallet = metering.get_wallet(wid)
    if wallet.balance >= 0:
        assert sum(b.remaining for b in wallet.buckets) == wallet.balance
