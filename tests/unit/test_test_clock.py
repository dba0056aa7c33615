"""Test clocks (docs/api.md, "Test clocks"), through the real metering handler: in test mode
``POST /v1/test-clock`` moves the service's clock forward and runs the schedules up to the new
time before it answers; outside test mode both routes are unknown (404). The offset lives in the
table and every invocation reads it; outside test mode nothing reads it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from credit_meter.api.access import METER, PLATFORM
from credit_meter.core import clock
from credit_meter.storage import test_clock
from credit_meter.storage.store import Store
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, handler_module, ok, problem
from tests.principals import token

Api = Callable[..., tuple[int, dict[str, str], Any]]

pytestmark = pytest.mark.usefixtures("fresh_table")

W = "/v1/wallets/w1"
CLOCK = "/v1/test-clock"
START = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
MONTH = 31 * 86_400
MAX = 400 * 86_400


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(START) as fake:
        yield fake


@pytest.fixture
def test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MODE", "true")


@pytest.mark.usefixtures("test_mode")
def test_a_month_passes(api: Api, now: FakeClock) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)  # 50 credits; the period ends on 28 February
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "20"}), 201)
    promo_ends = START + timedelta(days=10)
    promo = {"credits": "5", "source": "promo", "expires_at": iso(promo_ends)}
    ok(api("POST", f"{W}/grants", promo), 201)
    held = ok(
        api(
            "POST",
            f"{W}/reservations",
            {"feature": "chat", "credits": "3", "expires_in_seconds": 3600},
        ),
        201,
    )
    before = ok(api("GET", W))
    assert (before["used"], before["held"], before["available"]) == ("20", "3", "32")

    moved = ok(api("POST", CLOCK, {"advance_seconds": MONTH}))
    assert moved["offset_seconds"] == MONTH and moved["test_mode"] is True
    assert moved["now"] == iso(START + timedelta(seconds=MONTH))
    assert (moved["holds_expired"], moved["wallets_reset"], moved["more_due"]) == (1, 1, False)

    after = ok(api("GET", W))
    # the period rolled and the allowance is whole again; the promo grant and the hold are gone
    assert after["period"] == {
        "start": "2026-02-28T00:00:00.000Z",
        "end": "2026-03-31T00:00:00.000Z",
    }
    assert (after["used"], after["held"], after["balance"]) == ("0", "0", "50")
    assert [b["source"] for b in after["buckets"]] == ["monthly"]
    # the reservation ended as the sweeper ends one: expired, nothing charged
    gone = problem(
        api("POST", f"{W}/reservations/{held['reservation_id']}/commit", {"credits": "1"}),
        409,
        "reservation-expired",
    )
    assert gone["status"] == 409
    # every later invocation runs at the moved time; the process's own clock is untouched
    assert ok(api("GET", CLOCK)) == {**moved, "holds_expired": 0, "wallets_reset": 0}
    assert clock.offset() == 0 and clock.now() == START


@pytest.mark.usefixtures("test_mode")
def test_advances_add_up_and_the_total_is_bounded(api: Api, now: FakeClock) -> None:
    assert ok(api("GET", CLOCK))["offset_seconds"] == 0
    ok(api("POST", CLOCK, {"advance_seconds": 60}))
    assert ok(api("POST", CLOCK, {"advance_seconds": 1}))["offset_seconds"] == 61
    while ok(api("GET", CLOCK))["offset_seconds"] + MAX <= test_clock.MAX_TOTAL_SECONDS:
        ok(api("POST", CLOCK, {"advance_seconds": MAX}))
    position = ok(api("GET", CLOCK))
    refused = problem(api("POST", CLOCK, {"advance_seconds": MAX}), 422, "invalid-request")
    assert [e["field"] for e in refused["errors"]] == ["advance_seconds"]
    assert ok(api("GET", CLOCK)) == position


@pytest.mark.usefixtures("test_mode")
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"advance_seconds": 0},
        {"advance_seconds": -1},
        {"advance_seconds": MAX + 1},
        {"advance_seconds": 1.5},
        {"advance_seconds": "60"},
        {"advance_seconds": True},
        {"advance_seconds": None},
        {"advance_seconds": 60, "other": 1},
    ],
)
def test_bad_bodies_are_422_and_move_nothing(api: Api, now: FakeClock, body: Any) -> None:
    problem(api("POST", CLOCK, body), 422, "invalid-request")
    assert ok(api("GET", CLOCK))["offset_seconds"] == 0


@pytest.mark.usefixtures("test_mode")
@pytest.mark.parametrize("claims", [token("owner"), token("admin"), token(scopes=[METER])])
def test_only_the_platform_may(api: Api, now: FakeClock, claims: dict[str, str]) -> None:
    problem(api("GET", CLOCK, as_=claims), 403, "forbidden")
    problem(api("POST", CLOCK, {"advance_seconds": 60}, as_=claims), 403, "forbidden")
    platform = token(scopes=[PLATFORM])
    assert ok(api("GET", CLOCK, as_=platform))["offset_seconds"] == 0


@pytest.mark.parametrize("mode", [None, "false", "no"])
def test_without_test_mode_there_is_no_such_route(
    api: Api, now: FakeClock, monkeypatch: pytest.MonkeyPatch, mode: str | None
) -> None:
    if mode is not None:
        monkeypatch.setenv("TEST_MODE", mode)
    else:
        monkeypatch.delenv("TEST_MODE", raising=False)
    unknown = api("GET", "/v1/no-such-route")
    for claims in (token(scopes=[PLATFORM]), None):
        got = api("GET", CLOCK, as_=claims)
        assert got[:2] == unknown[:2]
        assert got[2] == {**unknown[2], "detail": f"no route for {CLOCK}"}, got
        posted = api("POST", CLOCK, {"advance_seconds": 60}, as_=claims)
        assert posted[0] == 404 and posted[2]["type"] == "/problems/not-found"


@pytest.fixture
def dynamodb_calls() -> Iterator[list[str]]:
    """The DynamoDB operations made while the test runs."""
    from credit_meter.storage import store

    seen: list[str] = []
    events = store.dynamodb_client().meta.events

    def count(model: Any, **_: Any) -> None:
        seen.append(model.name)

    events.register("before-call.dynamodb", count)
    yield seen
    events.unregister("before-call.dynamodb", count)


@pytest.mark.parametrize("mode", [True, False])
def test_a_charge_reads_the_clock_once_in_test_mode_only(
    api: Api,
    now: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    dynamodb_calls: list[str],
    mode: bool,
) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    charge = {"feature": "chat", "credits": "1"}
    ok(api("POST", f"{W}/charges", charge), 201)  # warm: the wallet's organisation is known
    monkeypatch.setenv("TEST_MODE", "true" if mode else "false")
    dynamodb_calls.clear()
    ok(api("POST", f"{W}/charges", charge), 201)
    # the charge's one write, after the clock's one read in test mode only
    assert dynamodb_calls == [*(["GetItem"] if mode else []), "TransactWriteItems"]


@pytest.mark.usefixtures("test_mode")
def test_the_schedules_handlers_run_at_the_moved_time(api: Api, now: FakeClock) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    hold = {"feature": "chat", "credits": "3", "expires_in_seconds": 60}
    ok(api("POST", f"{W}/reservations", hold), 201)
    test_clock.add_offset(Store(), 120)  # moved, the schedules not yet run
    sweeper = handler_module("hold_sweeper.app")
    assert sweeper.handler({}, FakeContext())["expired"] == 1
    assert ok(api("GET", W))["held"] == "0"


@pytest.mark.usefixtures("test_mode")
def test_a_long_advance_brings_the_period_up_to_the_new_time(api: Api, now: FakeClock) -> None:
    ok(api("PUT", W, {"plan": "free"}), 201)
    moved = ok(api("POST", CLOCK, {"advance_seconds": MAX}))
    assert moved["wallets_reset"] == 1
    period = ok(api("GET", W))["period"]
    assert period["start"] <= moved["now"] < period["end"], (period, moved["now"])
