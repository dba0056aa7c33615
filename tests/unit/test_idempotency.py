"""Idempotency of every POST (docs/domain.md invariant 4, docs/api.md): a retry changes nothing
and returns the first result; a key reused with another body is a 409 conflict (for a
reservation that ended, the conflict names how it ended); a reservation ends once.

Each test has a table of its own and makes its wallets on the free plan (50 credits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from credit_meter.core import clock
from credit_meter.core.errors import Conflict, IdempotencyConflict
from credit_meter.metering.service import Cost, Ended, Metering, Request
from tests.helpers import problem

KEY = {"Idempotency-Key": "order-4711-attempt"}

Api = Callable[..., tuple[int, dict[str, str], Any]]

pytestmark = pytest.mark.usefixtures("fresh_table")
WALLET = "w1"


def new_wallet(api: Api, wallet_id: str) -> str:
    status, _, body = api("PUT", f"/v1/wallets/{wallet_id}", {"plan": "free"})
    assert status == 201, body
    return f"/v1/wallets/{wallet_id}"


def reserve(
    api: Api, wallet: str, credits: str = "5", headers: dict[str, str] | None = None
) -> str:
    status, _, body = api(
        "POST", f"{wallet}/reservations", {"feature": "chat", "credits": credits}, headers
    )
    assert status == 201, body
    return str(body["reservation_id"])


def money(api: Api, wallet: str) -> tuple[str, str, str]:
    status, _, body = api("GET", wallet)
    assert status == 200, body
    return body["balance"], body["held"], body["available"]


@dataclass(frozen=True)
class Op:
    """A POST: how to get its path on a fresh wallet, a body, another body, its status, and
    the problem type of a retry with the same key and the other body."""

    path: Callable[[Api, str], str]
    body: Any
    other: Any
    status: int
    conflict: str = "idempotency-key-reused"


OPS = {
    "reserve": Op(
        lambda api, w: f"{w}/reservations",
        {"feature": "chat", "credits": "5"},
        {"feature": "chat", "credits": "6"},
        201,
    ),
    "commit": Op(
        lambda api, w: f"{w}/reservations/{reserve(api, w)}/commit",
        {"credits": "3"},
        {"credits": "4"},
        200,
        "reservation-committed",  # commit and release are idempotent by their reservation
    ),
    # release takes no body at all, so it has no "other body" to send
    "release": Op(lambda api, w: f"{w}/reservations/{reserve(api, w)}/release", None, None, 200),
    "charge": Op(
        lambda api, w: f"{w}/charges",
        {"feature": "chat", "credits": "5"},
        {"feature": "chat", "credits": "7"},
        201,
    ),
    "grant": Op(
        lambda api, w: f"{w}/grants",
        {"credits": "10", "source": "promo"},
        {"credits": "11", "source": "promo"},
        201,
    ),
}
WITH_OTHER_BODY = [name for name, op in OPS.items() if op.other is not None]


@pytest.mark.parametrize("name", OPS)
def test_retry_with_the_same_key_and_body_returns_the_first_result_and_changes_nothing(
    api: Api, table_items: Any, name: str
) -> None:
    op = OPS[name]
    wallet = new_wallet(api, WALLET)
    path = op.path(api, wallet)

    status, _, first = api("POST", path, op.body, KEY)
    assert status == op.status, first
    after_first = (money(api, wallet), table_items(WALLET))

    for _ in range(2):
        assert api("POST", path, op.body, KEY)[::2] == (op.status, first)
    assert (money(api, wallet), table_items(WALLET)) == after_first


@pytest.mark.parametrize("name", WITH_OTHER_BODY)
def test_same_key_with_another_body_is_a_conflict(api: Api, table_items: Any, name: str) -> None:
    op = OPS[name]
    wallet = new_wallet(api, WALLET)
    path = op.path(api, wallet)
    status, _, first = api("POST", path, op.body, KEY)
    assert status == op.status, first
    before = (money(api, wallet), table_items(WALLET))

    problem(api("POST", path, op.other, KEY), 409, op.conflict)
    assert (money(api, wallet), table_items(WALLET)) == before
    # ... and the first request still replays.
    assert api("POST", path, op.body, KEY)[::2] == (op.status, first)


@pytest.mark.parametrize(
    ("body", "equivalent"),
    [
        pytest.param(
            {"feature": "chat", "credits": "5"},
            {"credits": 5, "feature": "chat"},
            id="number-and-key-order",
        ),
        pytest.param(
            {"feature": "chat", "credits": "5"},
            {"feature": "chat", "credits": "5.000"},
            id="trailing-zeros",
        ),
        pytest.param(
            {"feature": "chat", "usage": [{"meter": "app_call", "quantity": 2}]},
            {"feature": "chat", "usage": [{"quantity": "2.0", "meter": "app_call"}]},
            id="usage-spelled-differently",
        ),
    ],
)
def test_an_equivalent_body_is_the_same_request(
    api: Api, body: dict[str, Any], equivalent: dict[str, Any]
) -> None:
    wallet = new_wallet(api, WALLET)
    first = api("POST", f"{wallet}/reservations", body, KEY)
    assert first[0] == 201
    assert api("POST", f"{wallet}/reservations", equivalent, KEY)[::2] == first[::2]
    assert money(api, wallet)[1] == first[2]["credits"]  # held once


# name: (first action, its body, second action, its body, second status, its problem type or
# None when the second must return exactly what the first did)
ENDINGS = {
    "commit-then-commit": ("commit", {"credits": "3"}, "commit", {"credits": "3"}, 200, None),
    "commit-without-body-twice": ("commit", None, "commit", None, 200, None),
    "release-then-release": ("release", None, "release", None, 200, None),
    "commit-after-release": ("release", None, "commit", None, 409, "reservation-released"),
    "release-after-commit": ("commit", None, "release", None, 409, "reservation-committed"),
    "commit-other-amount-after-commit": (
        "commit",
        {"credits": "3"},
        "commit",
        {"credits": "4"},
        409,
        "reservation-committed",
    ),
    "commit-other-usage-after-commit": (
        "commit",
        {"credits": "3"},
        "commit",
        {"usage": [{"meter": "app_call", "quantity": 60}]},  # also 3 credits
        409,
        "reservation-committed",
    ),
    "commit-with-body-after-commit-without": (
        "commit",
        None,
        "commit",
        {"credits": "5"},  # what was held, but another body
        409,
        "reservation-committed",
    ),
}


@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "with-key"])
@pytest.mark.parametrize("name", ENDINGS)
def test_a_reservation_ends_once(api: Api, table_items: Any, name: str, with_key: bool) -> None:
    first, first_body, second, second_body, status, code = ENDINGS[name]
    headers = KEY if with_key else None
    wallet = new_wallet(api, WALLET)
    rid = reserve(api, wallet, "5")
    ended = api("POST", f"{wallet}/reservations/{rid}/{first}", first_body, headers)
    assert ended[0] == 200, ended
    before = (money(api, wallet), table_items(WALLET))

    again = api("POST", f"{wallet}/reservations/{rid}/{second}", second_body, headers)
    if code is None:
        assert again[::2] == ended[::2]
    else:
        problem(again, status, code)
    assert (money(api, wallet), table_items(WALLET)) == before


ENDED_AS = {"commit": "committed", "release": "released"}


def end_reservation(service: Metering, end: str, rid: str, request: Request) -> Ended:
    if end == "commit":
        return service.commit(WALLET, rid, Cost(), request)
    return service.release(WALLET, rid, request)


@pytest.mark.parametrize("end", ENDED_AS)
def test_ending_a_reservation_again_with_another_body_is_a_conflict_about_it(
    api: Api, table_items: Any, end: str
) -> None:
    # Over HTTP a release always has the same (empty) body, so the service is called directly,
    # with another request hash.
    wallet = new_wallet(api, WALLET)
    rid = reserve(api, wallet)
    service = Metering()
    first = end_reservation(service, end, rid, Request("first-body"))
    assert first.status == ENDED_AS[end]
    before = (money(api, wallet), table_items(WALLET))

    with pytest.raises(Conflict) as refused:
        end_reservation(service, end, rid, Request("another-body", "order-4711-attempt"))
    assert not isinstance(refused.value, IdempotencyConflict)
    assert refused.value.code == f"reservation-{ENDED_AS[end]}"
    assert (money(api, wallet), table_items(WALLET)) == before
    assert end_reservation(service, end, rid, Request("first-body")) == first


@pytest.mark.parametrize("end", ["commit", "release"])
def test_reserve_retried_after_its_hold_ended_replays_and_holds_nothing(
    api: Api, table_items: Any, end: str
) -> None:
    wallet = new_wallet(api, WALLET)
    body = {"feature": "chat", "credits": "5"}
    status, _, first = api("POST", f"{wallet}/reservations", body, KEY)
    assert status == 201
    assert api("POST", f"{wallet}/reservations/{first['reservation_id']}/{end}")[0] == 200
    before = (money(api, wallet), table_items(WALLET))
    assert before[0][1] == "0"  # nothing held

    assert api("POST", f"{wallet}/reservations", body, KEY)[::2] == (201, first)
    assert (money(api, wallet), table_items(WALLET)) == before


def test_charge_retried_after_the_wallet_ran_dry_replays_instead_of_402(api: Api) -> None:
    wallet = new_wallet(api, WALLET)
    body = {"feature": "chat", "credits": "30"}
    first = api("POST", f"{wallet}/charges", body, KEY)
    assert first[0] == 201
    assert api("POST", f"{wallet}/charges", {"feature": "chat", "credits": "20"})[0] == 201
    assert money(api, wallet) == ("0", "0", "0")

    assert api("POST", f"{wallet}/charges", body, KEY)[::2] == first[::2]
    assert money(api, wallet) == ("0", "0", "0")


@pytest.mark.parametrize("name", ["reserve", "charge", "grant"])
def test_the_same_key_in_two_wallets_is_two_requests(api: Api, name: str) -> None:
    op = OPS[name]
    wallets = [new_wallet(api, f"w{n}") for n in (1, 2)]
    results = [api("POST", op.path(api, w), op.body, KEY) for w in wallets]

    assert [r[0] for r in results] == [op.status, op.status]
    ids = {next(v for k, v in r[2].items() if k.endswith("_id")) for r in results}
    assert len(ids) == 2, results
    assert money(api, wallets[0]) == money(api, wallets[1]) != ("50", "0", "50")


@pytest.fixture
def moment() -> Iterator[list[float]]:
    """A clock the test moves by hand: ``moment[0]`` is now, in epoch seconds."""
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()]
    clock.set_clock(lambda: now[0])
    yield now
    clock.set_clock(None)


PROMO = {"credits": "5", "source": "promo", "expires_at": "2026-03-01T12:10:00Z"}


def test_grant_retried_after_its_bucket_expired_replays(
    api: Api, table_items: Any, moment: list[float]
) -> None:
    wallet = new_wallet(api, WALLET)
    first = api("POST", f"{wallet}/grants", PROMO, KEY)
    assert first[0] == 201
    before = table_items(WALLET)

    moment[0] += 3600  # the retry comes after the promo ended
    assert api("POST", f"{wallet}/grants", PROMO, KEY)[::2] == first[::2]
    assert table_items(WALLET) == before


def test_grant_retried_after_its_bucket_expired_with_another_body_is_a_conflict(
    api: Api, table_items: Any, moment: list[float]
) -> None:
    wallet = new_wallet(api, WALLET)
    first = api("POST", f"{wallet}/grants", PROMO, KEY)
    assert first[0] == 201
    before = table_items(WALLET)

    moment[0] += 3600
    other = {**PROMO, "credits": "6"}
    problem(api("POST", f"{wallet}/grants", other, KEY), 409, "idempotency-key-reused")
    # the same expiry is refused for a grant that was not made before (another key, no key)
    for headers in ({"Idempotency-Key": "another-grant"}, None):
        status, _, refusal = api("POST", f"{wallet}/grants", PROMO, headers)
        assert status == 422, refusal
        assert [e["field"] for e in refusal["errors"]] == ["expires_at"]
    assert table_items(WALLET) == before
