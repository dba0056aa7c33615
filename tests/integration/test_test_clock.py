"""Test clocks on DynamoDB Local (docs/api.md, "Test clocks"; docs/data-model.md, "Test
clock"): through the real metering handler in test mode, a month passes and the schedules' work
is done before the answer; concurrent advances all count (one atomic ADD each) and the total
stays bounded by the write's condition."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from credit_meter.storage import test_clock
from credit_meter.storage.store import Store
from tests.helpers import FakeClock, frozen_clock, ok, results

Api = Callable[..., tuple[int, Any]]

W = "/v1/wallets/clockwork"
START = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
MONTH = 31 * 86_400


@pytest.fixture
def now(meter_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    monkeypatch.setenv("TEST_MODE", "true")
    with frozen_clock(START) as fake:
        yield fake


def test_a_month_passes(api: Api, now: FakeClock) -> None:
    ok(api("PUT", W, {"plan": "starter"}), 201)  # 500 credits until 20 June
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "100"}), 201)
    ok(
        api(
            "POST",
            "/v1/promo-codes",
            {"code": "WEEK", "credits": "10", "credits_expire_in_days": 7},
        ),
        201,
    )
    ok(api("POST", f"{W}/redeem", {"code": "WEEK"}), 201)
    hold = {"feature": "chat", "credits": "5", "expires_in_seconds": 600}
    ok(api("POST", f"{W}/reservations", hold), 201)
    assert ok(api("GET", W))["available"] == "405"

    moved = ok(api("POST", "/v1/test-clock", {"advance_seconds": MONTH}))
    assert (moved["offset_seconds"], moved["holds_expired"], moved["wallets_reset"]) == (
        MONTH,
        1,
        1,
    )
    after = ok(api("GET", W))
    assert after["period"]["start"] == "2026-06-20T00:00:00.000Z"
    assert (after["balance"], after["held"], after["used"]) == ("500", "0", "0")
    assert [b["source"] for b in after["buckets"]] == ["monthly"]
    # a second advance finds nothing more due until the next period's end
    again = ok(api("POST", "/v1/test-clock", {"advance_seconds": 60}))
    assert (again["holds_expired"], again["wallets_reset"]) == (0, 0)


def test_concurrent_advances_all_count_and_the_total_is_bounded(api: Api, now: FakeClock) -> None:
    store = Store()
    start = threading.Barrier(16)

    def advance() -> int:
        start.wait()
        return test_clock.add_offset(store, 60)

    with ThreadPoolExecutor(16) as pool:
        seen = results([pool.submit(advance) for _ in range(16)], "16 concurrent advances")
    assert test_clock.read_offset(store) == 16 * 60
    assert max(seen) == 16 * 60  # each answer is a total some advance reached
    assert ok(api("GET", "/v1/test-clock"))["offset_seconds"] == 16 * 60

    room = test_clock.MAX_TOTAL_SECONDS - 16 * 60
    test_clock.add_offset(store, room)
    with pytest.raises(test_clock.OffsetLimit):
        test_clock.add_offset(store, 1)
    assert test_clock.read_offset(store) == test_clock.MAX_TOTAL_SECONDS
