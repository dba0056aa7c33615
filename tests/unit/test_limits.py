"""Spending limits, member budgets and alert thresholds (issue "Spending limits and member
budgets") through the real metering handler.

``PUT /v1/wallets/{id}/limits`` sets the period's alert threshold and allowed limit (in credits
or in the catalog's fiat top-up currency, EUR at 100 credits per EUR); a hold or a charge that
would take ``used + held`` past the limit is refused with 403 ``spending-limit-reached``, in the
same conditional write as the debit, while a commit never fails (it may overshoot). A member's
budget (``PUT …/members/{member_id}/budget``) works the same way inside the wallet and is
refused with 403 ``member-budget-reached``; a hold counted against a budget carries the
member's 12-hex tag at the end of its reservation id. The monthly reset (``Periods.advance``,
what the reset worker runs) gives the limit's room and every member's room back.

Each test has a table and a clock of its own, starting at 2026-01-31 15:00 UTC: wallet ``w1``
on the free plan (50 credits) has its period end on 2026-02-28. After the requests that move
credits, the wallet item is checked against what it must always satisfy (``rooms_are_exact``):
``lrem = (lim or 10¹⁵) − used − held`` and, for every member budget, ``r = (c or 0) − u −`` its
open holds.

The budget hints (which members this process has seen with a budget: they only save a round
trip) start empty in every test; ``new_hints`` forgets them again where a test plays another
Lambda instance, whose first debit of a budgeted member guesses wrong and is corrected.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from credit_meter.billing.periods import Periods
from credit_meter.metering import pricing_modes
from credit_meter.metering.service import Metering
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store
from tests.helpers import FakeClock, frozen_clock, ok, problem

Api = Callable[..., tuple[int, dict[str, str], Any]]
Json = dict[str, Any]

pytestmark = pytest.mark.usefixtures("fresh_table")

W = "/v1/wallets/w1"
START = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
PERIOD_END = datetime(2026, 2, 28, tzinfo=UTC)
PERIOD = {"start": "2026-01-31T00:00:00.000Z", "end": "2026-02-28T00:00:00.000Z"}
NEXT_PERIOD = {"start": "2026-02-28T00:00:00.000Z", "end": "2026-03-31T00:00:00.000Z"}
NO_LIMIT = Decimal(10**15)
ZERO = Decimal(0)
BUDGETED_RID = re.compile(r"rsv_[0-9a-f]{20}_[0-9a-z]+_([0-9a-f]{12})")
PLAIN_RID = re.compile(r"rsv_[0-9a-f]{20}_[0-9a-z]+")


def tag(member_id: str) -> str:
    """The member's tag, as a budgeted reservation id ends with it."""
    return hashlib.sha256(member_id.encode()).hexdigest()[:12]


def _unmarked(item: dict[str, Any]) -> dict[str, Any]:
    """An item without the marks a period's first refusal leaves (``lhit`` on the wallet,
    ``h`` in a member's budget): they exist for the limit.reached alert, and are tested on
    their own below."""
    item = {k: v for k, v in item.items() if k != "lhit"}
    if "mb" in item:
        item["mb"] = {
            "M": {
                tag: {"M": {k: v for k, v in entry["M"].items() if k != "h"}}
                for tag, entry in item["mb"]["M"].items()
            }
        }
    return item


@pytest.fixture
def table_items(table_items: Callable[..., list[dict[str, Any]]]) -> Callable[..., Any]:
    """The items, without the refusal marks (compare before and after a refused request)."""

    def items(wallet_id: str | None = None) -> list[dict[str, Any]]:
        return [_unmarked(i) for i in table_items(wallet_id)]

    return items


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(START) as fake:
        yield fake


def new_hints(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Forget which members have budgets, as a new Lambda instance would (the debits and
    the member budgets share the hints); returns the new, empty hints."""
    hints = pricing_modes.BudgetHints()
    monkeypatch.setattr(pricing_modes, "budget_hints", hints)
    return hints


@pytest.fixture(autouse=True)
def fresh_budget_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    """No member is known to have a budget yet when a test starts."""
    new_hints(monkeypatch)


@pytest.fixture
def wallet(api: Api, now: FakeClock) -> Json:
    """Wallet w1 on the free plan: 50 credits."""
    return ok(api("PUT", W, {"plan": "free"}), 201)


# -- helpers --------------------------------------------------------------------------------


def at_limit(
    response: tuple[int, dict[str, str], Any], limit: str, remaining: str, code: str
) -> None:
    """A 403 of ``code`` naming the limit (or budget) and what is left of it."""
    body = problem(response, 403, code)
    assert (body["limit"], body["remaining"]) == (limit, remaining), body


def charge(
    api: Api, credits: str, member: str | None = None, key: str | None = None
) -> tuple[int, dict[str, str], Any]:
    body: Json = {"feature": "chat", "credits": credits}
    if member is not None:
        body["member_id"] = member
    return api("POST", f"{W}/charges", body, {"Idempotency-Key": key} if key else None)


def reserve(
    api: Api,
    credits: str,
    member: str | None = None,
    key: str | None = None,
    expires_in: int | None = None,
) -> tuple[int, dict[str, str], Any]:
    body: Json = {"feature": "chat", "credits": credits}
    if member is not None:
        body["member_id"] = member
    if expires_in is not None:
        body["expires_in_seconds"] = expires_in
    return api("POST", f"{W}/reservations", body, {"Idempotency-Key": key} if key else None)


def held(api: Api, credits: str, member: str | None = None, **extra: Any) -> str:
    """Reserve and return the reservation id."""
    return str(ok(reserve(api, credits, member, **extra), 201)["reservation_id"])


def commit(api: Api, rid: str, credits: str | None = None) -> tuple[int, dict[str, str], Any]:
    body = None if credits is None else {"credits": credits}
    return api("POST", f"{W}/reservations/{rid}/commit", body)


def release(api: Api, rid: str) -> tuple[int, dict[str, str], Any]:
    return api("POST", f"{W}/reservations/{rid}/release")


def put_limits(api: Api, **body: Any) -> tuple[int, dict[str, str], Any]:
    return api("PUT", f"{W}/limits", body)


def limits(api: Api) -> Json:
    body = ok(api("GET", f"{W}/limits"), 200)
    assert ok(api("GET", W), 200)["limits"] == {
        "alert_threshold": body["alert_threshold"],
        "allowed_limit": body["allowed_limit"],
        "remaining": body["remaining"],
    }
    return dict(body)


def room(api: Api) -> str | None:
    """What the limit leaves this period, as GET …/limits and GET wallet both say."""
    left = limits(api)["remaining"]
    return None if left is None else str(left)


def state(api: Api) -> str:
    return str(ok(api("GET", W), 200)["state"])


def put_budget(api: Api, member: str, budget: str | None) -> tuple[int, dict[str, str], Any]:
    return api("PUT", f"{W}/members/{member}/budget", {"budget": budget})


def budget(api: Api, member: str) -> Json:
    return dict(ok(api("GET", f"{W}/members/{member}/budget"), 200))


def usage(api: Api, member: str) -> tuple[str | None, str, str, str | None]:
    """A member's (budget, used, held, remaining)."""
    b = budget(api, member)
    return b["budget"], b["used"], b["held"], b["remaining"]


def wallet_item(wallet_id: str = "w1") -> Json:
    found = Store().get(wallet_record.key(wallet_id))
    assert found is not None
    return found


def rooms_are_exact(wallet_id: str = "w1") -> Json:
    """The stored rooms agree with what they count: the limit's room is the limit (10¹⁵
    without one) less used and held, each budget's room its cap (0 without one) less its
    usage and its open holds."""
    item = wallet_item(wallet_id)
    used, holding = Decimal(item["used"]), Decimal(item["held"])
    limit = Decimal(item["lim"]) if "lim" in item else NO_LIMIT
    assert Decimal(item["lrem"]) == limit - used - holding, item
    holds = item.get("hd", {})
    for member, entry in item.get("mb", {}).items():
        open_ = sum((Decimal(h["c"]) for h in holds.values() if h.get("b") == member), ZERO)
        cap = Decimal(entry["c"]) if "c" in entry else ZERO
        assert Decimal(entry["r"]) == cap - Decimal(entry["u"]) - open_, (member, entry)
    return item


def sweep() -> int:
    """What the hold sweeper does every minute; returns how many holds it expired."""
    report = Metering().sweep()
    assert report.failed == {}
    return report.expired


def reset(now: FakeClock) -> None:
    """Move past the period's end and run what the reset worker runs for w1."""
    now.set(PERIOD_END + timedelta(seconds=30))
    assert Periods().advance("w1").reset


# -- the spending limit -------------------------------------------------------------------------


def test_limits_are_set_read_and_removed(api: Api, wallet: Json) -> None:
    assert wallet["state"] == "ok"
    assert wallet["limits"] == {"alert_threshold": None, "allowed_limit": None, "remaining": None}
    unset = {
        "wallet_id": "w1",
        "period": PERIOD,
        "alert_threshold": None,
        "allowed_limit": None,
        "used": "0",
        "held": "0",
        "remaining": None,
        "state": "ok",
        "fiat": {
            "currency": "eur",
            "alert_threshold": None,
            "allowed_limit": None,
            "used": "0",
            "remaining": None,
        },
    }
    assert limits(api) == unset

    ok(charge(api, "5"), 201)
    rid = held(api, "3")
    set_ = ok(put_limits(api, alert_threshold="30", allowed_limit="40"), 200)
    assert set_ == {
        **unset,
        "alert_threshold": "30",
        "allowed_limit": "40",
        "used": "5",
        "held": "3",
        "remaining": "32",  # 40 - 5 used - 3 held
        "fiat": {
            "currency": "eur",
            "alert_threshold": "0.3",
            "allowed_limit": "0.4",
            "used": "0.05",
            "remaining": "0.32",
        },
    }
    assert limits(api) == set_
    assert ok(api("GET", W), 200)["limits"] == {
        "alert_threshold": "30",
        "allowed_limit": "40",
        "remaining": "32",
    }
    item = rooms_are_exact()
    assert (item["lim"], item["lat"], item["lrem"]) == (40, 30, 32)

    # A PUT replaces both: what it leaves out is removed.
    only_limit = ok(put_limits(api, allowed_limit="45"), 200)
    assert (only_limit["alert_threshold"], only_limit["allowed_limit"]) == (None, "45")
    assert only_limit["remaining"] == "37"
    assert "lat" not in rooms_are_exact()

    ok(commit(api, rid, "2"), 200)
    assert room(api) == "38"  # 45 - 7 used

    removed = ok(put_limits(api), 200)
    assert (removed["alert_threshold"], removed["allowed_limit"], removed["remaining"]) == (
        None,
        None,
        None,
    )
    assert removed["used"] == "7"
    item = rooms_are_exact()
    assert "lim" not in item and "lat" not in item
    assert item["lrem"] == NO_LIMIT - 7
    # Without a limit, anything the credits cover goes through.
    ok(charge(api, "43"), 201)
    rooms_are_exact()


@pytest.mark.parametrize("currency", ["EUR", "eur", "Eur"])
def test_limits_in_the_top_up_currency_are_converted_at_its_rate(
    api: Api, wallet: Json, currency: str
) -> None:
    body = ok(put_limits(api, alert_threshold="0.25", allowed_limit="0.4", currency=currency), 200)
    # 100 credits per EUR
    assert (body["alert_threshold"], body["allowed_limit"], body["remaining"]) == (
        "25",
        "40",
        "40",
    )
    assert body["fiat"] == {
        "currency": "eur",
        "alert_threshold": "0.25",
        "allowed_limit": "0.4",
        "used": "0",
        "remaining": "0.4",
    }
    item = rooms_are_exact()
    assert (item["lim"], item["lat"]) == (40, 25)

    ok(charge(api, "30"), 201)
    at_limit(charge(api, "10.000001"), "40", "10", "spending-limit-reached")
    ok(charge(api, "10"), 201)
    body = limits(api)
    assert (body["used"], body["remaining"]) == ("40", "0")
    assert body["fiat"] == {
        "currency": "eur",
        "alert_threshold": "0.25",
        "allowed_limit": "0.4",
        "used": "0.4",
        "remaining": "0",
    }
    # The smallest fiat amount is a cent: 1 credit.
    ok(put_limits(api, allowed_limit="0.41", currency=currency), 200)
    at_limit(charge(api, "1.000001"), "41", "1", "spending-limit-reached")
    ok(charge(api, "1"), 201)
    rooms_are_exact()


def test_a_charge_of_exactly_the_room_left_passes_and_a_micro_credit_more_does_not(
    api: Api, wallet: Json, table_items: Any
) -> None:
    ok(put_limits(api, allowed_limit="10"), 200)
    ok(charge(api, "4"), 201)
    assert room(api) == "6"

    before = table_items()
    at_limit(charge(api, "6.000001"), "10", "6", "spending-limit-reached")
    assert table_items() == before  # a refusal writes nothing

    ok(charge(api, "6"), 201)
    assert room(api) == "0"
    for amount in ("0.000001", "1"):
        before = table_items()
        at_limit(charge(api, amount), "10", "0", "spending-limit-reached")
        at_limit(reserve(api, amount), "10", "0", "spending-limit-reached")
        assert table_items() == before
    body = ok(api("GET", W), 200)
    # 40 credits are still there: the limit, not the balance, refuses
    assert (body["balance"], body["available"], body["used"]) == ("40", "40", "10")
    rooms_are_exact()


def test_holds_count_as_spent_and_a_release_gives_the_room_back(
    api: Api, wallet: Json, table_items: Any
) -> None:
    ok(put_limits(api, allowed_limit="10"), 200)
    big = held(api, "7")
    assert limits(api)["held"] == "7" and room(api) == "3"

    before = table_items()
    at_limit(reserve(api, "3.000001"), "10", "3", "spending-limit-reached")
    at_limit(charge(api, "3.000001"), "10", "3", "spending-limit-reached")
    assert table_items() == before
    small = held(api, "3")
    assert room(api) == "0"
    # 40 credits available, yet nothing more: 403, never 402 while credits remain
    assert ok(api("GET", W), 200)["available"] == "40"
    at_limit(charge(api, "0.000001"), "10", "0", "spending-limit-reached")
    at_limit(reserve(api, "0.000001"), "10", "0", "spending-limit-reached")

    ok(release(api, big), 200)
    assert room(api) == "7"
    ok(charge(api, "7"), 201)
    assert room(api) == "0"
    # A commit below the hold gives back the difference.
    ok(commit(api, small, "1"), 200)
    assert room(api) == "2"
    body = limits(api)
    assert (body["used"], body["held"]) == ("8", "0")
    rooms_are_exact()


def test_past_the_limit_a_lack_of_credits_is_still_402(api: Api, wallet: Json) -> None:
    ok(put_limits(api, allowed_limit="100"), 200)  # more than the 50 credits
    body = problem(charge(api, "50.000001"), 402, "insufficient-credits")
    assert (body["available"], body["requested"]) == ("50", "50.000001")
    ok(charge(api, "50"), 201)
    assert room(api) == "50"
    # Both short: the owner's cap is named first.
    ok(put_limits(api, allowed_limit="50"), 200)
    at_limit(charge(api, "1"), "50", "0", "spending-limit-reached")


def test_the_limit_holds_on_a_plan_that_allows_overage(api: Api, now: FakeClock) -> None:
    ok(api("PUT", W, {"plan": "scale"}), 201)  # 10,000 credits; charges may go below zero
    ok(charge(api, "10000"), 201)
    ok(charge(api, "5"), 201)  # overage
    ok(put_limits(api, allowed_limit="10010"), 200)
    assert room(api) == "5"
    at_limit(charge(api, "5.000001"), "10010", "5", "spending-limit-reached")
    at_limit(reserve(api, "5.000001"), "10010", "5", "spending-limit-reached")
    ok(charge(api, "5"), 201)
    body = ok(api("GET", W), 200)
    assert (body["balance"], body["state"], body["limits"]["remaining"]) == (
        "-10",
        "capped",
        "0",
    )
    rooms_are_exact()


def test_a_refused_keyed_debit_is_evaluated_afresh_when_retried(
    api: Api, wallet: Json, table_items: Any
) -> None:
    ok(put_limits(api, allowed_limit="5"), 200)
    ok(put_budget(api, "alice", "2"), 200)
    before = table_items()
    at_limit(charge(api, "6", key="k1"), "5", "5", "spending-limit-reached")
    at_limit(reserve(api, "3", "alice", key="k2"), "2", "2", "member-budget-reached")
    assert table_items() == before  # no record of a refusal: nothing to replay

    ok(put_limits(api, allowed_limit="10"), 200)
    ok(put_budget(api, "alice", "3"), 200)
    first = ok(charge(api, "6", key="k1"), 201)
    held_ = ok(reserve(api, "3", "alice", key="k2"), 201)
    assert BUDGETED_RID.fullmatch(held_["reservation_id"])
    # and now the retries replay those
    assert ok(charge(api, "6", key="k1"), 201) == first
    assert ok(reserve(api, "3", "alice", key="k2"), 201) == held_
    assert (room(api), usage(api, "alice")) == ("1", ("3", "0", "3", "0"))
    rooms_are_exact()


def test_a_commit_above_its_hold_may_overshoot_then_everything_is_refused(
    api: Api, wallet: Json
) -> None:
    ok(put_limits(api, allowed_limit="10"), 200)
    rid = held(api, "8")
    assert room(api) == "2"

    # The work happened: the commit never fails, even past the limit.
    done = ok(commit(api, rid, "15"), 200)
    assert (done["status"], done["charged"]) == ("committed", "15")
    body = limits(api)
    assert (body["used"], body["held"], body["remaining"], body["state"]) == (
        "15",
        "0",
        "0",
        "capped",
    )
    assert rooms_are_exact()["lrem"] == -5  # overshot by 5
    assert state(api) == "capped"
    at_limit(charge(api, "0.000001"), "10", "0", "spending-limit-reached")
    at_limit(reserve(api, "0.000001"), "10", "0", "spending-limit-reached")

    # The overshoot counts: raising the limit to 20 leaves 5, not 10.
    ok(put_limits(api, allowed_limit="20"), 200)
    assert room(api) == "5"
    at_limit(charge(api, "5.000001"), "20", "5", "spending-limit-reached")
    ok(charge(api, "5"), 201)
    rooms_are_exact()


def test_lowering_the_limit_below_what_was_used_caps_the_wallet(api: Api, wallet: Json) -> None:
    ok(put_limits(api, allowed_limit="30"), 200)
    ok(charge(api, "20"), 201)
    rid = held(api, "4")

    lowered = ok(put_limits(api, allowed_limit="15"), 200)
    assert (lowered["used"], lowered["held"], lowered["remaining"], lowered["state"]) == (
        "20",
        "4",
        "0",
        "capped",
    )
    assert rooms_are_exact()["lrem"] == -9  # 15 - 20 - 4
    at_limit(charge(api, "0.000001"), "15", "0", "spending-limit-reached")
    # An open hold still commits (and releases).
    ok(commit(api, rid, "4"), 200)
    assert rooms_are_exact()["lrem"] == -9

    raised = ok(put_limits(api, allowed_limit="30"), 200)
    assert (raised["remaining"], raised["state"]) == ("6", "ok")  # 24 of 50 used: below 75%
    ok(charge(api, "6"), 201)
    assert state(api) == "capped"
    rooms_are_exact()


def test_states_ok_alerting_capped_and_depleted(api: Api, wallet: Json) -> None:
    ok(api("PUT", f"{W}/alerts", {"thresholds": []}), 200)  # only the spending alert
    ok(put_limits(api, alert_threshold="10", allowed_limit="40"), 200)
    assert state(api) == "ok"
    ok(charge(api, "9.999999"), 201)
    assert state(api) == "ok"
    ok(charge(api, "0.000001"), 201)
    assert state(api) == "alerting"  # the spending alert: 10 used
    assert limits(api)["state"] == "alerting"
    ok(charge(api, "30"), 201)
    assert state(api) == limits(api)["state"] == "capped"  # 40 used of 40

    # Raised: under the limit again, still past the alert.
    ok(put_limits(api, alert_threshold="10", allowed_limit="50"), 200)
    assert state(api) == "alerting"
    ok(charge(api, "10"), 201)
    # Out of credits and at the limit: capped names the owner's cap.
    body = ok(api("GET", W), 200)
    assert (body["balance"], body["state"]) == ("0", "capped")
    ok(put_limits(api), 200)
    assert state(api) == "depleted"


def test_a_wallet_whose_holds_take_every_credit_is_depleted(api: Api, wallet: Json) -> None:
    ok(api("PUT", f"{W}/alerts", {"thresholds": []}), 200)
    rid = held(api, "50")
    assert state(api) == "depleted"  # nothing available for new holds
    ok(release(api, rid), 200)
    assert state(api) == "ok"


def test_the_default_thresholds_make_the_wallet_alerting_at_75_percent(
    api: Api, wallet: Json
) -> None:
    ok(charge(api, "37.499999"), 201)
    assert state(api) == "ok"
    ok(charge(api, "0.000001"), 201)  # 37.5 of 50
    assert state(api) == "alerting"


def test_the_reset_gives_the_limit_its_room_back(api: Api, wallet: Json, now: FakeClock) -> None:
    ok(put_limits(api, alert_threshold="5", allowed_limit="20"), 200)
    ok(charge(api, "15"), 201)
    now.set(PERIOD_END - timedelta(hours=12))
    across = held(api, "3", expires_in=86400)  # still open after the reset
    assert (room(api), state(api)) == ("2", "alerting")
    at_limit(charge(api, "2.000001"), "20", "2", "spending-limit-reached")

    reset(now)

    body = limits(api)
    assert body["period"] == NEXT_PERIOD
    # The period's use is gone; the open hold still counts.
    assert (body["used"], body["held"], body["remaining"], body["state"]) == (
        "0",
        "3",
        "17",
        "ok",
    )
    rooms_are_exact()
    # Committed after the reset, the hold counts in the new period.
    ok(commit(api, across, "3"), 200)
    assert (limits(api)["used"], room(api)) == ("3", "17")
    ok(charge(api, "17"), 201)
    at_limit(charge(api, "0.000001"), "20", "0", "spending-limit-reached")
    assert state(api) == "capped"
    # A second run finds nothing to do and leaves the room alone.
    assert not Periods().advance("w1").reset
    assert room(api) == "0"
    rooms_are_exact()


def test_the_sweeper_expiring_a_hold_gives_its_room_back(
    api: Api, wallet: Json, now: FakeClock
) -> None:
    ok(put_limits(api, allowed_limit="10"), 200)
    ok(put_budget(api, "alice", "6"), 200)
    held(api, "4", expires_in=60)
    held(api, "6", "alice", expires_in=60)
    assert room(api) == "0"
    assert usage(api, "alice") == ("6", "0", "6", "0")
    at_limit(charge(api, "0.000001"), "10", "0", "spending-limit-reached")

    now.advance(59)
    assert sweep() == 0
    now.advance(61)
    assert sweep() == 2

    assert (room(api), limits(api)["held"]) == ("10", "0")
    assert usage(api, "alice") == ("6", "0", "0", "6")
    rooms_are_exact()
    ok(charge(api, "6", "alice"), 201)
    ok(charge(api, "4"), 201)
    assert room(api) == "0"
    rooms_are_exact()


def test_a_wallet_made_before_limits_counts_its_use_when_a_limit_is_set(
    api: Api, wallet: Json, aws: Any, fresh_table: str
) -> None:
    ok(charge(api, "30"), 201)
    held(api, "5")
    # A wallet written before limits existed has no ``lrem``.
    aws.update_item(
        TableName=fresh_table,
        Key={"pk": {"S": "W#w1"}, "sk": {"S": "W"}},
        UpdateExpression="REMOVE lrem",
    )
    assert limits(api)["remaining"] is None

    body = ok(put_limits(api, allowed_limit="40"), 200)
    assert (body["used"], body["held"]) == ("30", "5")
    assert body["remaining"] == "5", body
    at_limit(charge(api, "5.000001"), "40", "5", "spending-limit-reached")


# -- member budgets -----------------------------------------------------------------------------


def test_member_budgets_are_set_read_and_listed(api: Api, wallet: Json, table_items: Any) -> None:
    assert ok(api("GET", f"{W}/members"), 200) == {"items": []}
    problem(api("GET", f"{W}/members/alice/budget"), 404, "member-budget-not-found")

    set_ = ok(put_budget(api, "alice", "5"), 200)
    expected = {
        "wallet_id": "w1",
        "member_id": "alice",
        "period": PERIOD,
        "budget": "5",
        "used": "0",
        "held": "0",
        "remaining": "5",
    }
    assert set_ == expected
    assert budget(api, "alice") == expected
    ok(put_budget(api, "bob.smith@example.com", "0.5"), 200)
    ok(put_budget(api, "Zed", "1"), 200)
    listed = ok(api("GET", f"{W}/members"), 200)["items"]
    assert [b["member_id"] for b in listed] == ["Zed", "alice", "bob.smith@example.com"]
    assert listed[1] == expected

    # null for a member without a budget: nothing to remove
    before = table_items()
    problem(put_budget(api, "carol", None), 404, "member-budget-not-found")
    problem(api("GET", f"{W}/members/carol/budget"), 404, "member-budget-not-found")
    assert table_items() == before

    changed = ok(put_budget(api, "alice", "8"), 200)
    assert (changed["budget"], changed["remaining"]) == ("8", "8")
    uncapped = ok(put_budget(api, "alice", None), 200)
    assert (uncapped["budget"], uncapped["remaining"]) == (None, None)
    assert [b["member_id"] for b in ok(api("GET", f"{W}/members"), 200)["items"]] == [
        "Zed",
        "alice",
        "bob.smith@example.com",
    ]
    rooms_are_exact()


def test_a_member_budget_refuses_reserves_and_charges_past_it(
    api: Api, wallet: Json, table_items: Any
) -> None:
    ok(put_budget(api, "alice", "5"), 200)
    rid = held(api, "3", "alice")
    assert usage(api, "alice") == ("5", "0", "3", "2")

    before = table_items()
    at_limit(charge(api, "2.000001", "alice"), "5", "2", "member-budget-reached")
    at_limit(reserve(api, "2.000001", "alice"), "5", "2", "member-budget-reached")
    assert table_items() == before
    ok(charge(api, "2", "alice"), 201)
    assert usage(api, "alice") == ("5", "2", "3", "0")
    at_limit(charge(api, "0.000001", "alice"), "5", "0", "member-budget-reached")
    at_limit(reserve(api, "0.000001", "alice"), "5", "0", "member-budget-reached")

    # Only alice stops: others in the wallet, and the wallet itself, go on.
    ok(charge(api, "10", "bob"), 201)
    ok(reserve(api, "10", "bob"), 201)
    ok(charge(api, "10"), 201)
    problem(api("GET", f"{W}/members/bob/budget"), 404, "member-budget-not-found")
    body = ok(api("GET", W), 200)
    assert (body["used"], body["held"], body["available"]) == ("22", "13", "15")
    rooms_are_exact()

    ok(commit(api, rid, "3"), 200)
    assert usage(api, "alice") == ("5", "5", "0", "0")
    at_limit(charge(api, "0.000001", "alice"), "5", "0", "member-budget-reached")
    rooms_are_exact()


def test_commit_release_and_expiry_give_the_member_room_back(
    api: Api, wallet: Json, now: FakeClock
) -> None:
    ok(put_budget(api, "alice", "10"), 200)
    first = held(api, "4", "alice")
    second = held(api, "3", "alice")
    third = held(api, "2", "alice", expires_in=60)
    assert usage(api, "alice") == ("10", "0", "9", "1")

    ok(commit(api, first, "1"), 200)  # 3 of its 4 come back
    assert usage(api, "alice") == ("10", "1", "5", "4")
    ok(release(api, second), 200)
    assert usage(api, "alice") == ("10", "1", "2", "7")
    now.advance(121)
    assert sweep() == 1
    assert usage(api, "alice") == ("10", "1", "0", "9")
    problem(commit(api, third), 409, "reservation-expired")  # gives nothing back twice
    assert usage(api, "alice") == ("10", "1", "0", "9")
    rooms_are_exact()

    # A commit above its hold takes the excess from the room too, even below zero.
    over = held(api, "2", "alice")
    ok(commit(api, over, "6"), 200)
    assert usage(api, "alice") == ("10", "7", "0", "3")
    at_limit(reserve(api, "3.000001", "alice"), "10", "3", "member-budget-reached")
    last = held(api, "3", "alice")
    ok(commit(api, last, "5"), 200)  # 2 past the budget: commits never fail
    assert usage(api, "alice") == ("10", "12", "0", "0")
    assert rooms_are_exact()["mb"][tag("alice")]["r"] == -2
    at_limit(charge(api, "0.000001", "alice"), "10", "0", "member-budget-reached")
    # The overshoot counts: 2 more of budget gives no room.
    ok(put_budget(api, "alice", "12"), 200)
    at_limit(charge(api, "0.000001", "alice"), "12", "0", "member-budget-reached")
    rooms_are_exact()


def test_the_reset_gives_every_member_room_back(api: Api, wallet: Json, now: FakeClock) -> None:
    ok(put_limits(api, allowed_limit="30"), 200)
    ok(put_budget(api, "alice", "10"), 200)
    ok(put_budget(api, "bob", "5"), 200)
    ok(put_budget(api, "carol", "8"), 200)
    ok(put_budget(api, "carol", None), 200)  # counted, not capped
    ok(charge(api, "10", "alice"), 201)
    ok(charge(api, "3", "bob"), 201)
    now.set(PERIOD_END - timedelta(hours=12))
    across = held(api, "1", "bob", expires_in=86400)
    ok(charge(api, "7", "carol"), 201)
    assert usage(api, "alice") == ("10", "10", "0", "0")
    assert usage(api, "bob") == ("5", "3", "1", "1")
    assert usage(api, "carol") == (None, "7", "0", None)
    assert room(api) == "9"  # 30 - 20 used - 1 held
    at_limit(charge(api, "0.000001", "alice"), "10", "0", "member-budget-reached")
    rooms_are_exact()

    reset(now)

    assert usage(api, "alice") == ("10", "0", "0", "10")
    assert usage(api, "bob") == ("5", "0", "1", "4")
    assert usage(api, "carol") == (None, "0", "0", None)
    assert budget(api, "alice")["period"] == NEXT_PERIOD
    assert room(api) == "29"
    rooms_are_exact()

    ok(charge(api, "10", "alice"), 201)
    ok(commit(api, across, "1"), 200)
    assert usage(api, "bob") == ("5", "1", "0", "4")
    at_limit(charge(api, "4.000001", "bob"), "5", "4", "member-budget-reached")
    assert room(api) == "19"
    assert not Periods().advance("w1").reset  # nothing more to give back
    assert usage(api, "alice") == ("10", "10", "0", "0")
    rooms_are_exact()


def test_removing_the_cap_keeps_counting_the_member_use(api: Api, wallet: Json) -> None:
    ok(put_budget(api, "alice", "5"), 200)
    ok(charge(api, "3", "alice"), 201)
    rid = held(api, "1", "alice")
    uncapped = ok(put_budget(api, "alice", None), 200)
    assert (uncapped["budget"], uncapped["used"], uncapped["held"], uncapped["remaining"]) == (
        None,
        "3",
        "1",
        None,
    )
    ok(charge(api, "10", "alice"), 201)  # no cap
    ok(commit(api, rid, "2"), 200)
    assert usage(api, "alice") == (None, "15", "0", None)
    rooms_are_exact()

    # A cap again: what was used this period counts against it.
    capped = ok(put_budget(api, "alice", "20"), 200)
    assert (capped["used"], capped["remaining"]) == ("15", "5")
    at_limit(charge(api, "5.000001", "alice"), "20", "5", "member-budget-reached")
    ok(charge(api, "5", "alice"), 201)
    at_limit(reserve(api, "0.000001", "alice"), "20", "0", "member-budget-reached")
    rooms_are_exact()


def test_changing_the_cap_while_holds_are_open(api: Api, wallet: Json) -> None:
    ok(put_budget(api, "alice", "10"), 200)
    big = held(api, "6", "alice")
    small = held(api, "2", "alice")

    lowered = ok(put_budget(api, "alice", "4"), 200)
    assert (lowered["held"], lowered["remaining"]) == ("8", "0")
    assert rooms_are_exact()["mb"][tag("alice")]["r"] == -4
    at_limit(charge(api, "0.000001", "alice"), "4", "0", "member-budget-reached")

    # Holds opened under the old cap end as usual.
    ok(commit(api, big, "6"), 200)
    assert usage(api, "alice") == ("4", "6", "2", "0")
    ok(release(api, small), 200)
    assert usage(api, "alice") == ("4", "6", "0", "0")
    assert rooms_are_exact()["mb"][tag("alice")]["r"] == -2

    raised = ok(put_budget(api, "alice", "10"), 200)
    assert raised["remaining"] == "4"
    at_limit(charge(api, "4.000001", "alice"), "10", "4", "member-budget-reached")
    ok(charge(api, "4", "alice"), 201)
    rooms_are_exact()


def test_a_budget_counts_only_what_comes_after_it(api: Api, wallet: Json) -> None:
    ok(charge(api, "7", "bob"), 201)
    before = held(api, "5", "bob")
    assert PLAIN_RID.fullmatch(before)

    ok(put_budget(api, "bob", "3"), 200)
    assert usage(api, "bob") == ("3", "0", "0", "3")
    ok(commit(api, before, "5"), 200)  # opened before the budget: not charged to it
    assert usage(api, "bob") == ("3", "0", "0", "3")
    after = held(api, "3", "bob")
    assert BUDGETED_RID.fullmatch(after)
    assert usage(api, "bob") == ("3", "0", "3", "0")
    rooms_are_exact()


def test_a_hold_counted_against_a_budget_carries_the_member_tag(api: Api, wallet: Json) -> None:
    unbudgeted = held(api, "1", "alice")
    ok(put_budget(api, "alice", "10"), 200)
    budgeted = held(api, "1", "alice")
    again = held(api, "1", "alice")  # the hint learnt: the first guess is right now
    other = held(api, "1", "bob")
    anonymous = held(api, "1")

    for rid in (budgeted, again):
        match = BUDGETED_RID.fullmatch(rid)
        assert match is not None, rid
        assert match.group(1) == tag("alice")
    for rid in (unbudgeted, other, anonymous):
        assert PLAIN_RID.fullmatch(rid), rid
    hd = rooms_are_exact()["hd"]
    assert sorted(h.get("b", "-") for h in hd.values()).count(tag("alice")) == 2

    for rid in (unbudgeted, budgeted, again, other, anonymous):
        ok(release(api, rid), 200)
    assert usage(api, "alice") == ("10", "0", "0", "10")
    rooms_are_exact()


def test_a_stale_budget_hint_is_corrected_by_the_write(
    api: Api, wallet: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process believes alice has a budget in w1 (say from an earlier wallet w1) ...
    hints = new_hints(monkeypatch)
    hints.learn("w1", tag("alice"), True)
    rid = held(api, "2", "alice")
    assert PLAIN_RID.fullmatch(rid)
    ok(charge(api, "1", "alice"), 201)
    assert not hints.known("w1", tag("alice"))
    ok(commit(api, rid), 200)

    # ... and one that has not seen her budget guesses none: corrected the other way.
    ok(put_budget(api, "alice", "4"), 200)
    hints = new_hints(monkeypatch)
    budgeted = held(api, "1", "alice")
    assert BUDGETED_RID.fullmatch(budgeted)
    assert hints.known("w1", tag("alice"))
    new_hints(monkeypatch)
    at_limit(charge(api, "3.000001", "alice"), "4", "3", "member-budget-reached")
    new_hints(monkeypatch)
    ok(charge(api, "3", "alice"), 201)
    assert usage(api, "alice") == ("4", "3", "1", "0")
    rooms_are_exact()


def test_a_stripped_or_forged_member_tag_is_not_found_and_changes_nothing(
    api: Api, wallet: Json, table_items: Any
) -> None:
    ok(put_budget(api, "alice", "10"), 200)
    ok(put_budget(api, "bob", "10"), 200)
    rid = held(api, "4", "alice")
    plain = held(api, "2", "carol")  # no budget: no tag
    stripped = rid.rsplit("_", 1)[0]
    assert stripped + f"_{tag('alice')}" == rid
    forged = [
        stripped,
        f"{stripped}_{tag('bob')}",  # another member's budget
        f"{stripped}_{'0' * 12}",
        f"{stripped}_{tag('alice').upper()}",
        f"{plain}_{tag('alice')}",  # a tag on a hold that has none
        f"{plain}_{tag('carol')}",
    ]
    before = table_items()
    for bad in forged:
        problem(commit(api, bad), 404, "reservation-not-found")
        problem(commit(api, bad, "1"), 404, "reservation-not-found")
        problem(release(api, bad), 404, "reservation-not-found")
        assert table_items() == before, bad

    ok(commit(api, rid, "4"), 200)
    ok(release(api, plain), 200)
    assert usage(api, "alice") == ("10", "4", "0", "6")
    assert usage(api, "bob") == ("10", "0", "0", "10")
    rooms_are_exact()


def test_a_stripped_member_tag_is_not_found_after_the_hold_ended_either(
    api: Api, wallet: Json, table_items: Any
) -> None:
    ok(put_budget(api, "alice", "10"), 200)
    rid = held(api, "4", "alice")
    ok(commit(api, rid), 200)
    before = table_items()
    stripped = rid.rsplit("_", 1)[0]
    for bad in (stripped, f"{stripped}_{tag('bob')}"):
        problem(commit(api, bad), 404, "reservation-not-found")
        assert table_items() == before


def test_a_wallet_holds_budgets_for_at_most_32_members(
    api: Api, wallet: Json, table_items: Any
) -> None:
    for n in range(32):
        ok(put_budget(api, f"m{n:02d}", str(n + 1)), 200)
    assert len(ok(api("GET", f"{W}/members"), 200)["items"]) == 32

    before = table_items()
    problem(put_budget(api, "m32", "1"), 409, "too-many-member-budgets")
    problem(put_budget(api, "m32", None), 404, "member-budget-not-found")
    assert table_items() == before
    # The 33rd member is not budgeted: her use is not counted, nor her holds tagged.
    assert PLAIN_RID.fullmatch(held(api, "1", "m32"))
    ok(charge(api, "1", "m32"), 201)

    # The 32 can still be changed, and uncapping one does not free a place.
    assert ok(put_budget(api, "m00", "9"), 200)["budget"] == "9"
    assert ok(put_budget(api, "m31", None), 200)["budget"] is None
    problem(put_budget(api, "m32", "1"), 409, "too-many-member-budgets")
    assert len(ok(api("GET", f"{W}/members"), 200)["items"]) == 32
    rooms_are_exact()


def test_the_tighter_of_the_limit_and_the_member_budget_refuses(api: Api, wallet: Json) -> None:
    ok(put_limits(api, allowed_limit="10"), 200)
    ok(put_budget(api, "alice", "6"), 200)

    # alice's budget is tighter than the wallet's room
    at_limit(charge(api, "7", "alice"), "6", "6", "member-budget-reached")
    at_limit(reserve(api, "6.5", "alice"), "6", "6", "member-budget-reached")
    ok(charge(api, "5", "bob"), 201)
    # now the wallet's room (5) is tighter than alice's (6)
    at_limit(charge(api, "5.5", "alice"), "10", "5", "spending-limit-reached")
    at_limit(reserve(api, "5.5", "alice"), "10", "5", "spending-limit-reached")
    rid = held(api, "5", "alice")
    assert (room(api), usage(api, "alice")) == ("0", ("6", "0", "5", "1"))
    at_limit(charge(api, "1", "alice"), "10", "0", "spending-limit-reached")

    ok(put_limits(api, allowed_limit="100"), 200)
    at_limit(charge(api, "1.000001", "alice"), "6", "1", "member-budget-reached")
    ok(charge(api, "1", "alice"), 201)
    ok(release(api, rid), 200)
    assert (room(api), usage(api, "alice")) == ("94", ("6", "1", "0", "5"))
    rooms_are_exact()


def test_a_debit_past_both_names_the_tighter_one(api: Api, wallet: Json) -> None:
    ok(put_limits(api, allowed_limit="10"), 200)
    ok(put_budget(api, "alice", "3"), 200)
    at_limit(charge(api, "11", "alice"), "3", "3", "member-budget-reached")


def test_replays_with_a_member_budget_return_the_first_result(
    api: Api, wallet: Json, table_items: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(put_budget(api, "alice", "5"), 200)
    first_hold = reserve(api, "3", "alice", key="k-reserve")
    rid = ok(first_hold, 201)["reservation_id"]
    assert BUDGETED_RID.fullmatch(rid)
    first_charge = charge(api, "2", "alice", key="k-charge")
    ok(first_charge, 201)
    assert usage(api, "alice") == ("5", "2", "3", "0")

    before = table_items()
    # The budget is used up, yet the retries get their first answers, not 403 ...
    assert reserve(api, "3", "alice", key="k-reserve")[::2] == first_hold[::2]
    assert charge(api, "2", "alice", key="k-charge")[::2] == first_charge[::2]
    # ... also in a process that has not seen the budget (its first guess is wrong).
    new_hints(monkeypatch)
    assert reserve(api, "3", "alice", key="k-reserve")[::2] == first_hold[::2]
    new_hints(monkeypatch)
    assert charge(api, "2", "alice", key="k-charge")[::2] == first_charge[::2]
    assert table_items() == before
    # Another body with the same key is a conflict, not a budget refusal.
    problem(reserve(api, "1", "alice", key="k-reserve"), 409, "idempotency-key-reused")
    problem(charge(api, "1", "alice", key="k-charge"), 409, "idempotency-key-reused")

    ok(commit(api, rid, "3"), 200)
    assert usage(api, "alice") == ("5", "5", "0", "0")
    after_commit = table_items()
    assert reserve(api, "3", "alice", key="k-reserve")[::2] == first_hold[::2]
    assert table_items() == after_commit
    rooms_are_exact()


def test_a_keyed_hold_from_before_the_budget_replays_without_a_tag(
    api: Api, wallet: Json, table_items: Any
) -> None:
    first = ok(reserve(api, "3", "alice", key="k-early"), 201)
    assert PLAIN_RID.fullmatch(first["reservation_id"])
    ok(put_budget(api, "alice", "5"), 200)
    before = table_items()
    assert ok(reserve(api, "3", "alice", key="k-early"), 201) == first
    assert table_items() == before
    assert usage(api, "alice") == ("5", "0", "0", "5")
    ok(commit(api, first["reservation_id"]), 200)
    assert usage(api, "alice") == ("5", "0", "0", "5")
    rooms_are_exact()


def test_the_ledger_names_a_budgeted_hold_by_its_reservation_id(
    api: Api, wallet: Json, project_ledger: Callable[[], None]
) -> None:
    ok(put_budget(api, "alice", "10"), 200)
    committed = held(api, "3", "alice")
    released = held(api, "2", "alice")
    ok(commit(api, committed, "1"), 200)
    ok(release(api, released), 200)
    project_ledger()
    entries = ok(api("GET", f"{W}/transactions"), 200)["items"]
    by_id = {e["transaction_id"]: e for e in entries}
    assert (by_id[committed]["status"], by_id[committed]["credits"]) == ("committed", "-1")
    assert (by_id[released]["status"], by_id[released]["member_id"]) == ("released", "alice")


def test_the_ledger_names_an_expired_budgeted_hold_by_its_reservation_id(
    api: Api, wallet: Json, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    ok(put_budget(api, "alice", "10"), 200)
    rid = held(api, "3", "alice", expires_in=60)
    now.advance(121)
    assert sweep() == 1
    project_ledger()
    entries = ok(api("GET", f"{W}/transactions"), 200)["items"]
    assert [e["status"] for e in entries if e["transaction_id"] == rid] == ["expired"]


# -- alert thresholds ---------------------------------------------------------------------------

DEFAULTS = [
    {"type": "consumed_percent", "value": "75", "crossed": False},
    {"type": "consumed_percent", "value": "90", "crossed": False},
    {"type": "consumed_percent", "value": "100", "crossed": False},
]


def test_alert_thresholds_default_set_read_and_off(api: Api, wallet: Json) -> None:
    assert ok(api("GET", f"{W}/alerts"), 200) == {
        "wallet_id": "w1",
        "thresholds": DEFAULTS,
        "defaults": True,
        "state": "ok",
    }
    ok(charge(api, "40"), 201)  # 80% of the allowance: 10 left
    crossed = ok(api("GET", f"{W}/alerts"), 200)
    assert [t["crossed"] for t in crossed["thresholds"]] == [True, False, False]
    assert crossed["state"] == "alerting"

    mine = [
        {"type": "remaining_credits", "value": "10"},
        {"type": "remaining_percent", "value": "20"},
        {"type": "remaining_percent", "value": "19.999999"},
        {"type": "consumed_percent", "value": "1000"},
        {"type": "remaining_percent", "value": "0"},
        {"type": "remaining_percent", "value": "100"},
        {"type": "consumed_percent", "value": "0.000001"},
        {"type": "remaining_credits", "value": "0"},
        {"type": "consumed_percent", "value": "80.000001"},
        {"type": "consumed_percent", "value": "80"},
    ]
    set_ = ok(api("PUT", f"{W}/alerts", {"thresholds": mine}), 200)
    assert set_ == {
        "wallet_id": "w1",
        "thresholds": [
            {**t, "crossed": c}
            for t, c in zip(
                mine,
                # balance 10 of an allowance of 50, 40 used
                [True, True, False, False, False, True, True, False, False, True],
                strict=True,
            )
        ],
        "defaults": False,
        "state": "alerting",
    }
    assert ok(api("GET", f"{W}/alerts"), 200) == set_

    off = ok(api("PUT", f"{W}/alerts", {"thresholds": []}), 200)
    assert off == {"wallet_id": "w1", "thresholds": [], "defaults": False, "state": "ok"}
    assert state(api) == "ok"  # nothing to alert on any more
    assert ok(api("GET", f"{W}/alerts"), 200) == off

    back = ok(api("PUT", f"{W}/alerts", {"thresholds": None}), 200)
    assert back["defaults"] is True and back["state"] == "alerting"
    assert [t["value"] for t in back["thresholds"]] == ["75", "90", "100"]
    assert "alr" not in wallet_item()


def test_alert_thresholds_accept_numbers_and_keep_their_order(api: Api, wallet: Json) -> None:
    body = ok(
        api(
            "PUT",
            f"{W}/alerts",
            '{"thresholds": [{"type": "remaining_credits", "value": 12.5},'
            ' {"type": "consumed_percent", "value": 50}]}',
        ),
        200,
    )
    assert [(t["type"], t["value"]) for t in body["thresholds"]] == [
        ("remaining_credits", "12.5"),
        ("consumed_percent", "50"),
    ]
    assert wallet_item()["alr"] == [{"t": "a", "v": Decimal("12.5")}, {"t": "c", "v": 50}]


def test_the_first_refusal_of_a_period_marks_the_wallet_once(
    api: Api, wallet: Json, aws: Any
) -> None:
    # A refused debit writes nothing else; this mark is what tells the stream (and so the
    # alerts function) that the limit started refusing. Only the first refusal writes it.
    ok(api("PUT", f"{W}/limits", {"allowed_limit": "10"}), 200)
    ok(put_budget(api, "alice", "3"), 200)

    def raw() -> dict[str, Any]:
        item = aws.get_item(
            TableName=os.environ["TABLE_NAME"], Key={"pk": {"S": "W#w1"}, "sk": {"S": "W"}}
        )["Item"]
        return cast(dict[str, Any], item)

    assert "lhit" not in raw()
    problem(
        api("POST", f"{W}/charges", {"feature": "chat", "credits": "11"}),
        403,
        "spending-limit-reached",
    )
    first = raw()
    assert first["lhit"] == first["ps"]
    problem(
        api("POST", f"{W}/charges", {"feature": "chat", "credits": "12"}),
        403,
        "spending-limit-reached",
    )
    assert raw() == first  # the second refusal wrote nothing
    problem(
        api("POST", f"{W}/charges", {"feature": "chat", "credits": "4", "member_id": "alice"}),
        403,
        "member-budget-reached",
    )
    marked = raw()
    (entry,) = marked["mb"]["M"].values()
    assert entry["M"]["h"] == marked["ps"]
    # A changed limit or cap forgets the mark: reaching the new one alerts again.
    ok(api("PUT", f"{W}/limits", {"allowed_limit": "20"}), 200)
    ok(put_budget(api, "alice", "4"), 200)
    cleared = raw()
    assert "lhit" not in cleared
    assert "h" not in next(iter(cleared["mb"]["M"].values()))["M"]
