"""Idempotency under races (docs/domain.md invariant 4): a request and its retries, sent at once.

The requests go through the real HTTP handler, each in a worker process of its own (as
concurrent Lambda invocations would run), against one wallet on DynamoDB Local.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.storage import items as stored
from tests.helpers import ok

pytestmark = pytest.mark.integration

COPIES = 16  # the original and its retries, in flight together


@dataclass(frozen=True)
class State:
    balance: Decimal
    held: Decimal
    holds: int  # open holds in the wallet item
    entries: int  # projected ledger entries
    records: int  # operation records (R#...)

    def minus(self, other: State) -> tuple[Decimal, Decimal, int, int, int]:
        return (
            self.balance - other.balance,
            self.held - other.held,
            self.holds - other.holds,
            self.entries - other.entries,
            self.records - other.records,
        )


class Wallet:
    """A fresh wallet on the shared table, and what the tests look at."""

    def __init__(self, lambdas: Any, ledger: Any) -> None:
        self.id = f"idem-{uuid.uuid4().hex[:10]}"
        self.path = f"/v1/wallets/{self.id}"
        self.call = lambdas.call
        self.lambdas = lambdas
        self.ledger = ledger
        ok(self.call("PUT", self.path, {"plan": "enterprise", "allowance": "100"}), 201)

    def state(self) -> State:
        self.ledger.drain()
        item = self.ledger.wallet_item(self.id)
        entries = self.ledger.entries(self.id)
        self.ledger.check_item(item, entries)
        records = self.ledger.items(self.id, stored.RECORD_PREFIX)
        return State(item["bal"], item["held"], len(item["hd"]), len(entries), len(records))

    def hold(self, credits: str = "10", key: str | None = None) -> str:
        headers = {"Idempotency-Key": key} if key else None
        body = ok(
            self.call(
                "POST",
                f"{self.path}/reservations",
                {"feature": "chat", "member_id": "ann", "credits": credits},
                headers,
            ),
            201,
        )
        return str(body["reservation_id"])

    def race(self, requests: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        return self.lambdas.call_all(requests)


def _post(path: str, body: dict[str, Any] | None, key: str | None) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": path,
        "body": body,
        "headers": {"Idempotency-Key": key} if key else None,
    }


# op -> (the request for a wallet (and its hold), success status, effect on State)
Make = Callable[[Wallet, str], tuple[str, dict[str, Any] | None]]
_OPS: dict[str, tuple[Make, int, tuple[Decimal, Decimal, int, int, int]]] = {
    "reserve": (
        lambda w, rid: (f"{w.path}/reservations", {"feature": "chat", "credits": "7"}),
        201,
        (Decimal(0), Decimal(7), 1, 0, 1),
    ),
    "commit": (
        lambda w, rid: (f"{w.path}/reservations/{rid}/commit", {"credits": "6"}),
        200,
        (Decimal(-6), Decimal(-10), -1, 1, 1),
    ),
    "release": (
        lambda w, rid: (f"{w.path}/reservations/{rid}/release", None),
        200,
        (Decimal(0), Decimal(-10), -1, 1, 1),
    ),
    "charge": (
        lambda w, rid: (f"{w.path}/charges", {"feature": "image", "credits": "3"}),
        201,
        (Decimal(-3), Decimal(0), 0, 1, 1),
    ),
    "grant": (
        lambda w, rid: (f"{w.path}/grants", {"credits": "25", "source": "promo"}),
        201,
        (Decimal(25), Decimal(0), 0, 1, 1),
    ),
}


@pytest.fixture
def wallet(lambdas: Any, shared_ledger: Any) -> Wallet:
    return Wallet(lambdas, shared_ledger)


@pytest.mark.parametrize("op", list(_OPS))
def test_a_request_and_its_retries_in_flight_together_take_effect_once(
    op: str, wallet: Wallet
) -> None:
    make, status, effect = _OPS[op]
    rid = wallet.hold("10")
    before = wallet.state()
    path, body = make(wallet, rid)
    key = f"race-{op}-{uuid.uuid4().hex[:8]}"

    responses = wallet.race([_post(path, body, key) for _ in range(COPIES)])

    assert {code for code, _ in responses} == {status}, responses
    assert all(answer == responses[0][1] for _, answer in responses), "answers differ"
    assert wallet.state().minus(before) == effect
    # A late retry, after the storm, still gets the first answer and changes nothing.
    after = wallet.state()
    assert wallet.call(**_post(path, body, key)) == responses[0]
    assert wallet.state() == after


@pytest.mark.parametrize("op", ["reserve", "charge", "grant", "commit"])
def test_one_key_with_different_bodies_in_flight_one_wins_the_rest_get_409(
    op: str, wallet: Wallet
) -> None:
    make, status, _ = _OPS[op]
    rid = wallet.hold(str(COPIES + 4))
    before = wallet.state()
    path, body = make(wallet, rid)
    assert body is not None
    key = f"race-{op}-{uuid.uuid4().hex[:8]}"
    bodies = [{**body, "credits": str(n)} for n in range(1, COPIES + 1)]

    responses = wallet.race([_post(path, b, key) for b in bodies])

    codes = Counter(code for code, _ in responses)
    assert codes == Counter({status: 1, 409: COPIES - 1}), responses
    winner = next(i for i, (code, _) in enumerate(responses) if code == status)
    # A hold ended with another body may also be reported as already ended (both are 409s).
    refusals = {"/problems/idempotency-key-reused"}
    if op == "commit":
        refusals.add("/problems/reservation-committed")
    for code, problem in responses:
        if code == 409:
            assert problem["type"] in refusals, problem
    # The winner took effect once, with its own amount; a retry of it replays it.
    after = wallet.state()
    moved = after.minus(before)
    amount = Decimal(winner + 1)
    expected = {
        "reserve": (Decimal(0), amount, 1, 0, 1),
        "charge": (-amount, Decimal(0), 0, 1, 1),
        "grant": (amount, Decimal(0), 0, 1, 1),
        "commit": (-amount, -Decimal(COPIES + 4), -1, 1, 1),
    }[op]
    assert moved == expected
    assert wallet.call(**_post(path, bodies[winner], key)) == responses[winner]
    assert wallet.state() == after


@pytest.mark.parametrize("hold_key", [None, "hold-key"], ids=["hold", "keyed-hold"])
def test_commit_and_release_of_one_hold_in_flight_together_end_it_once(
    wallet: Wallet, hold_key: str | None
) -> None:
    rid = wallet.hold("10", hold_key)
    before = wallet.state()
    commit = _post(f"{wallet.path}/reservations/{rid}/commit", {"credits": "4"}, None)
    release = _post(f"{wallet.path}/reservations/{rid}/release", None, None)
    half = COPIES // 2

    responses = wallet.race([commit, release] * half)

    commits, releases = responses[0::2], responses[1::2]
    committed = commits[0][0] == 200
    won, lost = (commits, releases) if committed else (releases, commits)
    assert all(r == won[0] for r in won), won
    assert won[0][0] == 200
    past = "committed" if committed else "released"
    loser_type = f"/problems/reservation-{past}"
    assert all(code == 409 and problem["type"] == loser_type for code, problem in lost), lost
    charged = Decimal(4) if committed else Decimal(0)
    records = 0 if hold_key else 1  # a keyed hold's record was written when it was made
    assert wallet.state().minus(before) == (-charged, Decimal(-10), -1, 1, records)
    entry = wallet.ledger.entries(wallet.id)[-1]
    assert entry["transaction_id"] == rid
    assert entry["status"] == ("committed" if committed else "released")


def test_retries_without_a_key_are_separate_requests(wallet: Wallet) -> None:
    """No Idempotency-Key: each charge is its own request (nothing is deduplicated)."""
    before = wallet.state()
    charge = _post(f"{wallet.path}/charges", {"feature": "image", "credits": "2"}, None)

    responses = wallet.race([charge] * 8)

    assert {code for code, _ in responses} == {201}
    ids = {json.dumps(body, sort_keys=True) for _, body in responses}
    assert len(ids) == 8
    assert wallet.state().minus(before) == (Decimal(-16), Decimal(0), 0, 8, 8)


def test_creating_one_wallet_from_many_requests_at_once_grants_its_allowance_once(
    lambdas: Any, shared_ledger: Any
) -> None:
    path = f"/v1/wallets/idem-{uuid.uuid4().hex[:10]}"

    responses = lambdas.call_all(
        [{"method": "PUT", "path": path, "body": {"plan": "free"}}] * COPIES
    )

    assert Counter(code for code, _ in responses) == Counter({201: 1, 200: COPIES - 1})
    assert all(body["balance"] == "50" for _, body in responses)
    wid = path.rsplit("/", 1)[1]
    entries = shared_ledger.check(wid)
    assert [(e["type"], e["credits"]) for e in entries] == [("grant", Decimal(50))]
