"""Plans, billing periods, resets and grants (issue 4): anchors, plan changes, the reset job's
``Periods.advance``, rollover and overage, the burn-down order, welcome bonuses, promo codes,
referrals, adjustments, transfers, voids, the grants list, and a wallet living through a year.

Everything runs through the real HTTP handler (``api``) except the reset itself, which is
``Periods().advance`` as the reset worker calls it. Each test has a table and a clock of its own
(``credit_meter.core.clock``), starting at 2026-01-31 15:00 UTC unless it says otherwise: a wallet
created then has the anchor day 31 and its first period runs from Jan 31 to Feb 28. Every
expected number is worked out by hand in the comments next to it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from credit_meter.billing.periods import Advanced, Periods
from credit_meter.core import periods, wallets
from credit_meter.core.money import fmt
from credit_meter.reports import projector
from credit_meter.storage import items, wallet_record
from credit_meter.storage.store import Store
from devtools.apigw import FakeContext
from tests.helpers import FakeClock, frozen_clock, handler_module, ok, pages, problem

Api = Callable[..., tuple[int, dict[str, str], Any]]

pytestmark = pytest.mark.usefixtures("fresh_table")

T0 = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ZERO = Decimal(0)


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(T0) as fake:
        yield fake


# -- helpers --------------------------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def path(wallet_id: str) -> str:
    return f"/v1/wallets/{wallet_id}"


def fields(body: dict[str, Any]) -> list[str]:
    assert body["type"] == "/problems/invalid-request", body
    return [e["field"] for e in body["errors"]]


def create(api: Api, wallet_id: str, plan: str = "free", **extra: Any) -> dict[str, Any]:
    return ok(api("PUT", path(wallet_id), {"plan": plan, **extra}), 201)


def get(api: Api, wallet_id: str) -> dict[str, Any]:
    return ok(api("GET", path(wallet_id)), 200)


def money(api: Api, wallet_id: str) -> tuple[str, str, str]:
    body = get(api, wallet_id)
    return body["balance"], body["held"], body["available"]


def period(api: Api, wallet_id: str) -> tuple[str, str]:
    body = get(api, wallet_id)
    return body["period"]["start"], body["period"]["end"]


def buckets(api: Api, wallet_id: str) -> list[tuple[str, str, str | None, int]]:
    """(source, remaining, expires_at, priority) in burn-down order, non-empty ones."""
    return [
        (b["source"], b["remaining"], b["expires_at"], b["priority"])
        for b in get(api, wallet_id)["buckets"]
    ]


def grant(
    api: Api,
    wallet_id: str,
    credits: str,
    source: str,
    expires_at: datetime | None = None,
    priority: int | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"credits": credits, "source": source}
    if expires_at is not None:
        body["expires_at"] = iso(expires_at)
    if priority is not None:
        body["priority"] = priority
    return ok(api("POST", f"{path(wallet_id)}/grants", body, headers), 201)


def charge(api: Api, wallet_id: str, credits: str) -> dict[str, Any]:
    return ok(
        api("POST", f"{path(wallet_id)}/charges", {"feature": "chat", "credits": credits}), 201
    )


def reserve(api: Api, wallet_id: str, credits: str, ttl: int = 86400) -> str:
    body = {"feature": "chat", "credits": credits, "expires_in_seconds": ttl}
    return str(ok(api("POST", f"{path(wallet_id)}/reservations", body), 201)["reservation_id"])


def commit(api: Api, wallet_id: str, rid: str, credits: str | None = None) -> dict[str, Any]:
    body = None if credits is None else {"credits": credits}
    return ok(api("POST", f"{path(wallet_id)}/reservations/{rid}/commit", body), 200)


def adjust(
    api: Api, wallet_id: str, credits: str, reason: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    body = {"credits": credits, "reason": reason}
    return api("POST", f"{path(wallet_id)}/adjustments", body, headers)


def transfer(
    api: Api, source: str, target: str, credits: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    body = {"to_wallet_id": target, "credits": credits}
    return api("POST", f"{path(source)}/transfers", body, headers)


def void(api: Api, wallet_id: str, grant_id: str) -> tuple[int, dict[str, str], Any]:
    return api("POST", f"{path(wallet_id)}/grants/{grant_id}/void")


def define(api: Api, code: str, credits: str, **terms: Any) -> tuple[int, dict[str, str], Any]:
    return api("POST", "/v1/promo-codes", {"code": code, "credits": credits, **terms})


def redeem(
    api: Api, wallet_id: str, code: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    return api("POST", f"{path(wallet_id)}/redeem", {"code": code}, headers)


def refer(api: Api, wallet_id: str, referrer: str) -> tuple[int, dict[str, str], Any]:
    return api("POST", f"{path(wallet_id)}/referral", {"referrer_wallet_id": referrer})


def advance(wallet_id: str) -> Advanced:
    """What the reset worker does for one queued wallet."""
    return Periods().advance(wallet_id)


def ledger(api: Api, wallet_id: str) -> list[dict[str, Any]]:
    """The wallet's ledger entries, oldest first."""
    return list(reversed(pages(api, f"{path(wallet_id)}/transactions")))


def grant_lines(api: Api, wallet_id: str) -> list[dict[str, Any]]:
    """GET /grants, newest first."""
    return pages(api, f"{path(wallet_id)}/grants")


def new_entries(
    api: Api, wallet_id: str, project: Callable[[], None], seen: int
) -> list[tuple[str, str, str | None]]:
    """(type, credits, source) of the ledger entries after the first ``seen``."""
    project()
    return [(e["type"], e["credits"], e["source"]) for e in ledger(api, wallet_id)[seen:]]


def entry_count(api: Api, wallet_id: str, project: Callable[[], None]) -> int:
    project()
    return len(ledger(api, wallet_id))


def wallet_item(wallet_id: str) -> dict[str, Any]:
    item = Store().get(wallet_record.key(wallet_id))
    assert item is not None
    return item


def bucket_ids(wallet_id: str) -> dict[str, str]:
    """Bucket id by source (one bucket per source in the wallets that use this)."""
    found = {b.source: b.id for b in wallet_record.buckets(wallet_item(wallet_id))}
    return found


def ends_of(grant_id: str, entries: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """What of a grant expired and was voided, by the ledger: its ``exp_<id>`` entry and the
    partial ones ``exp_<id>_<version>``, its ``vd_<id>`` entry."""
    suffix = grant_id.removeprefix("grt_")
    expired = -sum(
        (
            Decimal(e["credits"])
            for e in entries
            if e["type"] == "expire"
            and (
                e["transaction_id"] == f"exp_{suffix}"
                or e["transaction_id"].startswith(f"exp_{suffix}_")
            )
        ),
        ZERO,
    )
    voided = -sum(
        (Decimal(e["credits"]) for e in entries if e["transaction_id"] == f"vd_{suffix}"), ZERO
    )
    return expired, voided


def check_status(
    status: str | None, remaining: Decimal, expired: Decimal, voided: Decimal, line: Any
) -> None:
    assert (status == "active") == (remaining > 0), line
    assert (status == "voided") == (voided > 0), line
    if status == "expired":
        assert expired > 0 and remaining == 0, line


def check_ledger_explains(api: Api, wallet_id: str, project: Callable[[], None]) -> None:
    """docs/domain.md invariant 2, and the ledger explains every credit:

    * ``balance = Σ credits`` of the entries, each ``balance_after`` the running sum;
    * every grant of ``GET /grants`` is accounted for: granted − remaining is what expired
      (its ``exp_`` entries: one, or several when open holds kept part of it for a while),
      was voided (its ``vd_`` entry) or was used, never less than 0;
    * what the grants have left is the balance (or 0 when the wallet is in deficit), and
      the credits used from grants, plus deficits written off as overage, plus the deficit
      still open, are every debit the ledger shows.
    """
    project()
    view = get(api, wallet_id)
    entries = ledger(api, wallet_id)
    running = ZERO
    for entry in entries:
        running += Decimal(entry["credits"])
        assert Decimal(entry["balance_after"]) == running, entry
    balance = Decimal(view["balance"])
    assert running == balance
    assert Decimal(view["available"]) == balance - Decimal(view["held"])

    lines = grant_lines(api, wallet_id)
    grants = [e for e in entries if e["type"] == "grant"]
    assert {line["grant_id"] for line in lines} == {e["transaction_id"] for e in grants}
    used_total = ZERO
    for line in lines:
        expired, voided = ends_of(line["grant_id"], entries)
        remaining = Decimal(line["remaining"])
        used = Decimal(line["credits"]) - remaining - expired - voided
        assert used >= 0, line
        used_total += used
        check_status(line["status"], remaining, expired, voided, line)
    remaining_total = sum((Decimal(line["remaining"]) for line in lines), ZERO)
    assert remaining_total == max(balance, ZERO)
    debits = -sum(
        (
            Decimal(e["credits"])
            for e in entries
            if e["type"] in ("charge", "reservation", "transfer", "adjustment")
        ),
        ZERO,
    )
    overage = sum((Decimal(e["credits"]) for e in entries if e["type"] == "overage"), ZERO)
    assert used_total + overage + max(-balance, ZERO) == debits


# -- billing anchors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "anchor_day", "start", "end", "anchor"),
    [
        # without an anchor, the period starts on the creation day (UTC) and it is the anchor
        pytest.param(T0, None, utc(2026, 1, 31), utc(2026, 2, 28), 31, id="creation-day-31"),
        pytest.param(
            utc(2026, 3, 15, 23, 59), None, utc(2026, 3, 15), utc(2026, 4, 15), 15, id="day-15"
        ),
        # with one, on the latest anchor date not after the creation day (short months clamp)
        pytest.param(utc(2026, 3, 15, 10), 1, utc(2026, 3, 1), utc(2026, 4, 1), 1, id="anchor-1"),
        pytest.param(
            utc(2026, 3, 15, 10), 15, utc(2026, 3, 15), utc(2026, 4, 15), 15, id="anchor-today"
        ),
        pytest.param(
            utc(2026, 3, 15, 10), 20, utc(2026, 2, 20), utc(2026, 3, 20), 20, id="anchor-20"
        ),
        pytest.param(
            utc(2026, 3, 15, 10), 31, utc(2026, 2, 28), utc(2026, 3, 31), 31, id="anchor-31-feb"
        ),
        pytest.param(
            utc(2028, 3, 15, 10), 30, utc(2028, 2, 29), utc(2028, 3, 30), 30, id="anchor-30-leap"
        ),
        pytest.param(
            utc(2026, 1, 5, 10), 31, utc(2025, 12, 31), utc(2026, 1, 31), 31, id="anchor-31-dec"
        ),
        pytest.param(
            utc(2026, 2, 28, 10), 31, utc(2026, 2, 28), utc(2026, 3, 31), 31, id="on-feb-28"
        ),
    ],
)
def test_the_first_period(
    api: Api,
    now: FakeClock,
    created: datetime,
    anchor_day: int | None,
    start: datetime,
    end: datetime,
    anchor: int,
) -> None:
    now.set(created)
    extra = {} if anchor_day is None else {"anchor_day": anchor_day}
    body = create(api, "w1", **extra)
    assert body["period"] == {"start": iso(start), "end": iso(end)}
    assert body["anchor_day"] == anchor
    # the allowance of that period is granted at once and expires with it
    assert buckets(api, "w1") == [("monthly", "50", iso(end), 10)]
    assert wallets.first_period(created, anchor_day) == (start, end)


@pytest.mark.parametrize(
    ("anchor", "year", "ends"),
    [
        pytest.param(31, 2026, [(2, 28), (3, 31), (4, 30), (5, 31), (6, 30)], id="31"),
        pytest.param(31, 2028, [(2, 29), (3, 31), (4, 30)], id="31-leap-year"),
        pytest.param(30, 2026, [(2, 28), (3, 30), (4, 30), (5, 30)], id="30"),
        pytest.param(30, 2028, [(2, 29), (3, 30), (4, 30)], id="30-leap-year"),
        pytest.param(29, 2026, [(2, 28), (3, 29), (4, 29)], id="29"),
        pytest.param(29, 2028, [(2, 29), (3, 29), (4, 29)], id="29-leap-year"),
    ],
)
def test_month_end_anchors_clamp_to_short_months_and_come_back(
    api: Api, now: FakeClock, anchor: int, year: int, ends: list[tuple[int, int]]
) -> None:
    now.set(utc(year, 1, anchor, 9))
    create(api, "w1", anchor_day=anchor)
    start = utc(year, 1, anchor)
    for month, day in ends:
        end = utc(year, month, day)
        assert period(api, "w1") == (iso(start), iso(end))
        now.set(end - timedelta(seconds=1))  # a second early: nothing happens
        assert advance("w1") == Advanced("w1", False, ZERO, ZERO)
        now.set(end)  # the reset job runs at the period's end
        assert advance("w1") == Advanced("w1", True, Decimal(50), Decimal(50))
        start = end
    assert get(api, "w1")["anchor_day"] == anchor


def test_anchor_31_across_the_new_year(api: Api, now: FakeClock) -> None:
    now.set(utc(2027, 12, 31, 12))
    assert create(api, "w1")["period"] == {
        "start": iso(utc(2027, 12, 31)),
        "end": iso(utc(2028, 1, 31)),
    }
    for start, end in [
        (utc(2028, 1, 31), utc(2028, 2, 29)),
        (utc(2028, 2, 29), utc(2028, 3, 31)),
    ]:
        now.set(start)
        assert advance("w1").reset
        assert period(api, "w1") == (iso(start), iso(end))


def test_add_month_and_period_at() -> None:
    assert wallets.add_month(utc(2026, 1, 31), 31) == utc(2026, 2, 28)
    assert wallets.add_month(utc(2026, 2, 28), 31) == utc(2026, 3, 31)
    assert wallets.add_month(utc(2028, 1, 31), 31) == utc(2028, 2, 29)
    assert wallets.add_month(utc(2028, 2, 29), 30) == utc(2028, 3, 30)
    assert wallets.add_month(utc(2026, 12, 31, 7, 5), 31) == utc(2027, 1, 31, 7, 5)
    assert wallets.add_month(utc(2026, 4, 30), 31) == utc(2026, 5, 31)

    feb = ts(utc(2026, 2, 28))
    # the period after the one ending Feb 28
    assert periods.period_at(feb, 31, ts(utc(2026, 3, 1))) == (feb, ts(utc(2026, 3, 31)))
    # at the very end of a period the next one has begun
    assert periods.period_at(feb, 31, ts(utc(2026, 3, 31))) == (
        ts(utc(2026, 3, 31)),
        ts(utc(2026, 4, 30)),
    )
    # periods missed entirely are skipped: the one containing now
    assert periods.period_at(feb, 31, ts(utc(2026, 5, 15))) == (
        ts(utc(2026, 4, 30)),
        ts(utc(2026, 5, 31)),
    )
    assert periods.period_at(feb, 31, ts(utc(2027, 2, 28, 0, 0, 1))) == (
        ts(utc(2027, 2, 28)),
        ts(utc(2027, 3, 31)),
    )


def test_a_wallet_reset_late_skips_the_periods_it_missed(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    charge(api, "w1", "20")  # 30 of the allowance left
    now.set(utc(2026, 5, 15, 8))  # three period ends went by without a reset
    # one expiry (what was left), one new allowance: the missed periods grant nothing
    assert advance("w1") == Advanced("w1", True, Decimal(30), Decimal(50))
    body = get(api, "w1")
    assert body["period"] == {"start": iso(utc(2026, 4, 30)), "end": iso(utc(2026, 5, 31))}
    assert (body["balance"], body["used"], body["allowance"]) == ("50", "0", "50")
    assert new_entries(api, "w1", project_ledger, 2) == [
        ("expire", "-30", "monthly"),
        ("grant", "50", "monthly"),
    ]


def test_the_anchor_day_is_set_at_creation_and_stays(
    api: Api, now: FakeClock, table_items: Any
) -> None:
    created = create(api, "w1", anchor_day=10)
    assert created["anchor_day"] == 10
    assert created["period"] == {"start": iso(utc(2026, 1, 10)), "end": iso(utc(2026, 2, 10))}
    before = table_items()
    for body in ({"plan": "free", "anchor_day": 31}, {"plan": "pro", "anchor_day": 1}):
        response = api("PUT", path("w1"), body)
        assert fields(problem(response, 422, "invalid-request")) == ["anchor_day"]
        assert table_items() == before  # not even the upgrade happened
    # the same anchor again is fine, and so is leaving it out
    assert ok(api("PUT", path("w1"), {"plan": "free", "anchor_day": 10}), 200) == created
    assert ok(api("PUT", path("w1"), {"plan": "free"}), 200) == created


# -- plan changes ---------------------------------------------------------------------------


def test_an_upgrade_grants_the_difference_at_once(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    charge(api, "w1", "30")  # free: 50 - 30 = 20 left
    now.advance(DAY)
    body = ok(api("PUT", path("w1"), {"plan": "pro"}), 200)
    # pro's 2500 for the rest of the period: 2500 - 50 = 2450 more, expiring with the period
    assert (body["plan"], body["allowance"], body["pending_plan"]) == ("pro", "2500", None)
    assert (body["balance"], body["available"], body["used"]) == ("2470", "2470", "30")
    assert body["period"] == {"start": iso(utc(2026, 1, 31)), "end": iso(utc(2026, 2, 28))}
    end = iso(utc(2026, 2, 28))
    assert sorted(buckets(api, "w1")) == [
        ("monthly", "20", end, 10),
        ("monthly", "2450", end, 10),
    ]
    project_ledger()
    upgrade = ledger(api, "w1")[-1]
    assert (upgrade["type"], upgrade["credits"], upgrade["source"]) == ("grant", "2450", "monthly")
    assert (upgrade["balance_after"], upgrade["reason"]) == ("2470", "upgrade to pro")

    # at the reset everything left of both allowance grants ends; pro rolls over up to 1250
    charge(api, "w1", "470")  # 2000 left
    now.set(utc(2026, 2, 28))
    assert advance("w1") == Advanced("w1", True, Decimal(2000), Decimal(1250 + 2500))
    assert money(api, "w1") == ("3750", "0", "3750")
    check_ledger_explains(api, "w1", project_ledger)


def test_a_downgrade_waits_for_the_next_reset(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1", "pro")
    seen = entry_count(api, "w1", project_ledger)
    body = ok(api("PUT", path("w1"), {"plan": "starter"}), 200)
    assert (body["plan"], body["pending_plan"], body["allowance"]) == ("pro", "starter", "2500")
    assert money(api, "w1") == ("2500", "0", "2500")
    assert new_entries(api, "w1", project_ledger, seen) == []  # nothing posted
    now.set(utc(2026, 2, 27, 23, 59, 59))
    assert not advance("w1").reset
    assert get(api, "w1")["pending_plan"] == "starter"

    now.set(utc(2026, 2, 28))
    # the ending period was pro's: its 2500 unused roll over up to pro's cap of 1250, then
    # the starter allowance of 500 is granted: 1250 + 500 = 1750
    assert advance("w1") == Advanced("w1", True, Decimal(2500), Decimal(1750))
    body = get(api, "w1")
    assert (body["plan"], body["pending_plan"], body["allowance"]) == ("starter", None, "500")
    assert (body["balance"], body["used"]) == ("1750", "0")
    assert new_entries(api, "w1", project_ledger, seen) == [
        ("expire", "-2500", "monthly"),
        ("grant", "1250", "rollover"),
        ("grant", "500", "monthly"),
    ]

    # a period later the starter terms hold: no rollover (cap 0), 500 again
    charge(api, "w1", "1000")  # the rollover's 1250 and the 500 share the same expiry
    now.set(utc(2026, 3, 31))
    assert advance("w1") == Advanced("w1", True, Decimal(750), Decimal(500))
    assert money(api, "w1") == ("500", "0", "500")
    check_ledger_explains(api, "w1", project_ledger)


def test_the_current_plan_again_cancels_a_pending_downgrade(api: Api, now: FakeClock) -> None:
    create(api, "w1", "pro")
    assert ok(api("PUT", path("w1"), {"plan": "free"}), 200)["pending_plan"] == "free"
    kept = ok(api("PUT", path("w1"), {"plan": "pro"}), 200)
    assert (kept["plan"], kept["pending_plan"], kept["balance"]) == ("pro", None, "2500")
    now.set(utc(2026, 2, 28))
    # unused 2500: 1250 roll over, 2500 granted
    assert advance("w1") == Advanced("w1", True, Decimal(2500), Decimal(3750))
    body = get(api, "w1")
    assert (body["plan"], body["allowance"], body["balance"]) == ("pro", "2500", "3750")


def test_an_upgrade_replaces_a_pending_downgrade(api: Api, now: FakeClock) -> None:
    create(api, "w1", "pro")
    ok(api("PUT", path("w1"), {"plan": "starter"}), 200)
    body = ok(api("PUT", path("w1"), {"plan": "scale"}), 200)
    # scale (10000) now: 10000 - 2500 = 7500 more; the downgrade is forgotten
    assert (body["plan"], body["pending_plan"], body["overage"]) == ("scale", None, True)
    assert (body["allowance"], body["balance"]) == ("10000", "10000")
    now.set(utc(2026, 2, 28))
    advance("w1")
    assert (get(api, "w1")["plan"], get(api, "w1")["allowance"]) == ("scale", "10000")


def test_an_upgrade_in_the_reset_window_counts_for_the_new_period(api: Api, now: FakeClock) -> None:
    # Upgrading at 00:02, before the reset job has run, must end where upgrading at 00:06,
    # just after it, ends: free's 50 expire unrolled, and the new period is pro's 2500.
    create(api, "w1")
    now.set(utc(2026, 2, 28, 0, 2))
    ok(api("PUT", path("w1"), {"plan": "pro"}), 200)  # runs the pending reset first
    now.set(utc(2026, 2, 28, 0, 5))
    assert not advance("w1").reset  # nothing left for the reset job
    body = get(api, "w1")
    assert (body["plan"], body["allowance"], body["balance"]) == ("pro", "2500", "2500")
    # free's new 50 and the upgrade's 2450, both ending with the period
    assert sorted(b[1] for b in buckets(api, "w1")) == ["2450", "50"]
    assert {(b[0], b[2]) for b in buckets(api, "w1")} == {("monthly", iso(utc(2026, 3, 31)))}


def test_a_downgrade_in_the_reset_window_waits_for_the_following_reset(
    api: Api, now: FakeClock
) -> None:
    create(api, "w1", "pro")
    now.set(utc(2026, 2, 28, 0, 2))  # the pro period Feb 28 -> Mar 31 has begun
    ok(api("PUT", path("w1"), {"plan": "starter"}), 200)  # runs the pending reset first
    now.set(utc(2026, 2, 28, 0, 5))
    assert not advance("w1").reset  # nothing left for the reset job
    body = get(api, "w1")
    # pro until Mar 31: 2500 unused -> 1250 rolled over + pro's 2500
    assert (body["plan"], body["pending_plan"], body["allowance"]) == ("pro", "starter", "2500")
    assert body["balance"] == "3750"


def test_a_custom_allowance_changes_like_a_plan(api: Api, now: FakeClock) -> None:
    create(api, "w1", "enterprise", allowance="100")
    up = ok(api("PUT", path("w1"), {"plan": "enterprise", "allowance": "300"}), 200)
    assert (up["allowance"], up["balance"], up["pending_plan"]) == ("300", "300", None)
    down = ok(api("PUT", path("w1"), {"plan": "enterprise", "allowance": "40.5"}), 200)
    assert (down["allowance"], down["balance"], down["pending_plan"]) == (
        "300",
        "300",
        "enterprise",
    )
    now.set(utc(2026, 2, 28))
    assert advance("w1") == Advanced("w1", True, Decimal(300), Decimal("40.5"))
    body = get(api, "w1")
    assert (body["allowance"], body["balance"], body["pending_plan"]) == ("40.5", "40.5", None)


# -- resets ---------------------------------------------------------------------------------


def test_a_reset_expires_the_old_allowance_and_grants_the_new(
    api: Api, now: FakeClock, project_ledger: Callable[[], None], table_items: Any
) -> None:
    create(api, "w1")
    charge(api, "w1", "20")
    now.set(utc(2026, 2, 28, 0, 3))
    assert advance("w1") == Advanced("w1", True, Decimal(30), Decimal(50))
    body = get(api, "w1")
    assert body["period"] == {"start": iso(utc(2026, 2, 28)), "end": iso(utc(2026, 3, 31))}
    assert (body["balance"], body["used"], body["allowance"]) == ("50", "0", "50")
    assert buckets(api, "w1") == [("monthly", "50", iso(utc(2026, 3, 31)), 10)]
    project_ledger()
    expire, new = ledger(api, "w1")[-2:]
    assert (expire["type"], expire["credits"], expire["source"], expire["balance_after"]) == (
        "expire",
        "-30",
        "monthly",
        "0",
    )
    assert (new["type"], new["credits"], new["source"], new["balance_after"]) == (
        "grant",
        "50",
        "monthly",
        "50",
    )

    # a second run (a duplicate message, a retried schedule) finds nothing to do
    before = table_items()
    assert advance("w1") == Advanced("w1", False, ZERO, ZERO)
    assert table_items() == before
    check_ledger_explains(api, "w1", project_ledger)


def test_an_unknown_wallet_is_not_reset() -> None:
    assert advance("ghost") == Advanced("ghost", False, ZERO, ZERO)


@pytest.mark.parametrize(
    ("plan", "spent", "expired", "rolled", "allowance"),
    [
        # unused 1500 of pro's 2500: at most 1250 roll over
        pytest.param("pro", "1000", 1500, 1250, 2500, id="pro-capped"),
        # unused 1000: all of it rolls over
        pytest.param("pro", "1500", 1000, 1000, 2500, id="pro-under-cap"),
        # scale: cap 5000 of the unused 8000
        pytest.param("scale", "2000", 8000, 5000, 10000, id="scale-capped"),
        # free, starter: nothing rolls over
        pytest.param("free", "20", 30, 0, 50, id="free-none"),
        pytest.param("starter", "100", 400, 0, 500, id="starter-none"),
        # all spent: nothing to expire or roll
        pytest.param("pro", "2500", 0, 0, 2500, id="pro-all-spent"),
    ],
)
def test_rollover_caps(
    api: Api,
    now: FakeClock,
    project_ledger: Callable[[], None],
    plan: str,
    spent: str,
    expired: int,
    rolled: int,
    allowance: int,
) -> None:
    create(api, "w1", plan)
    charge(api, "w1", spent)
    seen = entry_count(api, "w1", project_ledger)
    now.set(utc(2026, 2, 28))
    assert advance("w1") == Advanced("w1", True, Decimal(expired), Decimal(rolled + allowance))
    assert money(api, "w1")[0] == str(rolled + allowance)
    end = iso(utc(2026, 3, 31))
    expected_buckets = [("monthly", str(allowance), end, 10)]
    expected_entries = [("expire", str(-expired), "monthly")] if expired else []
    if rolled:
        expected_buckets.append(("rollover", str(rolled), end, 10))
        expected_entries.append(("grant", str(rolled), "rollover"))
    expected_entries.append(("grant", str(allowance), "monthly"))
    assert sorted(buckets(api, "w1")) == sorted(expected_buckets)
    assert new_entries(api, "w1", project_ledger, seen) == expected_entries
    check_ledger_explains(api, "w1", project_ledger)


def test_a_rollover_is_allowance_and_does_not_roll_twice(api: Api, now: FakeClock) -> None:
    create(api, "w1", "pro")
    now.set(utc(2026, 2, 28))
    advance("w1")  # 2500 unused: 1250 rolled + 2500 = 3750
    charge(api, "w1", "500")  # 3250 left of rollover and allowance together
    now.set(utc(2026, 3, 31))
    # the rollover's remainder expires too; again at most 1250 roll over
    assert advance("w1") == Advanced("w1", True, Decimal(3250), Decimal(3750))
    assert money(api, "w1") == ("3750", "0", "3750")


def test_overage_plan_goes_below_zero_and_writes_the_deficit_off_at_reset(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    body = create(api, "w1", "scale")
    assert body["overage"] is True
    charge(api, "w1", "10500")  # 500 beyond the allowance: accepted
    assert money(api, "w1") == ("-500", "0", "-500")
    rid = reserve(api, "w1", "100")  # a hold below zero: accepted too
    assert money(api, "w1") == ("-500", "100", "-600")
    commit(api, "w1", rid, "100")
    assert money(api, "w1") == ("-600", "0", "-600")
    seen = entry_count(api, "w1", project_ledger)

    now.set(utc(2026, 2, 28))
    # nothing left to expire or roll over; the 600 deficit is billed, not repaid
    assert advance("w1") == Advanced("w1", True, ZERO, Decimal(10000))
    body = get(api, "w1")
    assert (body["balance"], body["available"], body["used"]) == ("10000", "10000", "0")
    project_ledger()
    entries = ledger(api, "w1")[seen:]
    assert [(e["type"], e["credits"], e["balance_after"]) for e in entries] == [
        ("overage", "600", "0"),
        ("grant", "10000", "10000"),
    ]
    check_ledger_explains(api, "w1", project_ledger)


def test_a_plan_without_overage_repays_the_deficit_from_the_new_allowance(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    rid = reserve(api, "w1", "50")
    commit(api, "w1", rid, "70")  # commit never fails: 20 below zero
    assert money(api, "w1") == ("-20", "0", "-20")
    assert problem(
        api("POST", f"{path('w1')}/charges", {"feature": "chat", "credits": "1"}),
        402,
        "insufficient-credits",
    )
    seen = entry_count(api, "w1", project_ledger)
    now.set(utc(2026, 2, 28))
    assert advance("w1") == Advanced("w1", True, ZERO, Decimal(50))
    # 50 granted, 20 of it repays the deficit
    assert money(api, "w1") == ("30", "0", "30")
    assert buckets(api, "w1") == [("monthly", "30", iso(utc(2026, 3, 31)), 10)]
    assert new_entries(api, "w1", project_ledger, seen) == [("grant", "50", "monthly")]
    check_ledger_explains(api, "w1", project_ledger)


def test_business_purchases_last_one_period(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "biz", "business")
    create(api, "free")
    end = utc(2026, 2, 28)
    # on business a purchase without expires_at ends with the period; elsewhere never
    topup = grant(api, "biz", "500", "purchase")
    assert (topup["source"], topup["expires_at"]) == ("purchase", iso(end))
    assert grant(api, "free", "500", "purchase")["expires_at"] is None
    # an explicit expiry is kept
    later = utc(2026, 6, 1)
    assert grant(api, "biz", "7", "purchase", expires_at=later)["expires_at"] == iso(later)

    charge(api, "biz", "2100")  # the 2000 allowance, then 100 of the purchase expiring first
    assert buckets(api, "biz") == [
        ("purchase", "400", iso(end), 20),
        ("purchase", "7", iso(later), 20),
    ]
    seen = entry_count(api, "biz", project_ledger)
    now.set(end)
    assert advance("biz") == Advanced("biz", True, Decimal(400), Decimal(2000))
    assert money(api, "biz") == ("2007", "0", "2007")
    assert new_entries(api, "biz", project_ledger, seen) == [
        ("expire", "-400", "purchase"),
        ("grant", "2000", "monthly"),
    ]
    assert advance("free").reset
    assert money(api, "free") == ("550", "0", "550")  # the purchase stays
    check_ledger_explains(api, "biz", project_ledger)


def test_a_business_purchase_in_the_reset_window_lasts_the_new_period(
    api: Api, now: FakeClock
) -> None:
    create(api, "biz", "business")
    now.set(utc(2026, 2, 28, 0, 2))  # the period ended, its reset has not run yet
    topup = grant(api, "biz", "500", "purchase")
    assert topup["expires_at"] == iso(utc(2026, 3, 31))  # the period it was bought in
    now.set(utc(2026, 2, 28, 0, 5))
    # the old allowance expires; the purchase stays
    assert advance("biz") == Advanced("biz", True, Decimal(2000), Decimal(2000))
    assert money(api, "biz") == ("2500", "0", "2500")


def test_a_promo_grant_expires_at_its_own_time_before_the_period_ends(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    expiry = utc(2026, 2, 5, 12)
    grant(api, "w1", "30", "promo", expires_at=expiry)
    charge(api, "w1", "10")  # from the promo, which expires before the allowance: 20 left
    assert buckets(api, "w1") == [
        ("promo", "20", iso(expiry), 10),
        ("monthly", "50", iso(utc(2026, 2, 28)), 10),
    ]
    assert wallet_item("w1")["due_at"] == ts(expiry)  # the reset job looks at it then
    seen = entry_count(api, "w1", project_ledger)

    now.set(expiry - timedelta(seconds=1))
    assert advance("w1") == Advanced("w1", False, ZERO, ZERO)
    now.set(expiry)
    assert advance("w1") == Advanced("w1", False, Decimal(20), ZERO)
    assert money(api, "w1") == ("50", "0", "50")
    assert period(api, "w1") == (iso(utc(2026, 1, 31)), iso(utc(2026, 2, 28)))
    assert get(api, "w1")["used"] == "10"  # the period goes on
    assert wallet_item("w1")["due_at"] == ts(utc(2026, 2, 28))
    assert new_entries(api, "w1", project_ledger, seen) == [("expire", "-20", "promo")]
    assert advance("w1") == Advanced("w1", False, ZERO, ZERO)
    check_ledger_explains(api, "w1", project_ledger)


def test_a_hold_open_across_a_reset_keeps_the_credits_it_reserved(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    charge(api, "w1", "10")
    rid = reserve(api, "w1", "30")
    assert money(api, "w1") == ("40", "30", "10")
    seen = entry_count(api, "w1", project_ledger)
    now.set(utc(2026, 2, 28))
    # of the 40 left, the 30 the hold set aside stay (past their expiry, spent after all
    # else) until it ends, so available stays what the new period gives; 10 expire; 50 are
    # granted for the new period
    assert advance("w1") == Advanced("w1", True, Decimal(10), Decimal(50))
    body = get(api, "w1")
    assert (body["balance"], body["held"], body["available"], body["used"]) == (
        "80",
        "30",
        "50",
        "0",
    )
    assert buckets(api, "w1") == [
        ("monthly", "50", iso(utc(2026, 3, 31)), 10),
        ("monthly", "30", iso(utc(2026, 2, 28)), 10),
    ]
    assert advance("w1") == Advanced("w1", False, ZERO, ZERO)  # nothing more while it is open

    now.advance(timedelta(hours=1))
    # a charge belongs to the period it is committed in: the new allowance pays first
    assert commit(api, "w1", rid, "25")["released"] == "5"
    body = get(api, "w1")
    assert (body["balance"], body["held"], body["available"], body["used"]) == (
        "55",
        "0",
        "55",
        "25",
    )
    # the reset job comes back for the kept 30, no longer needed by any hold
    assert wallet_item("w1")["due_at"] == ts(utc(2026, 2, 28))
    assert advance("w1") == Advanced("w1", False, Decimal(30), ZERO)
    assert money(api, "w1") == ("25", "0", "25")
    assert buckets(api, "w1") == [("monthly", "25", iso(utc(2026, 3, 31)), 10)]
    assert wallet_item("w1")["due_at"] == ts(utc(2026, 3, 31))
    assert new_entries(api, "w1", project_ledger, seen) == [
        ("expire", "-10", "monthly"),
        ("grant", "50", "monthly"),
        ("reservation", "-25", None),
        ("expire", "-30", "monthly"),
    ]
    check_ledger_explains(api, "w1", project_ledger)


def test_credits_held_across_a_promo_expiry_are_kept_for_the_hold(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    expiry = T0 + DAY
    grant(api, "w1", "20", "promo", expires_at=expiry)  # spent first
    rid = reserve(api, "w1", "60")  # the promo's 20 and 40 of the allowance
    now.set(expiry)
    # all of the promo is set aside by the hold: nothing expires yet; the promo is marked
    # kept (spent after everything else)
    assert advance("w1") == Advanced("w1", False, ZERO, ZERO)
    assert money(api, "w1") == ("70", "60", "10")
    assert [b[0] for b in buckets(api, "w1")] == ["monthly", "promo"]
    commit(api, "w1", rid, "12")  # paid by the allowance; the kept promo is not needed now
    assert advance("w1") == Advanced("w1", False, Decimal(20), ZERO)
    assert money(api, "w1") == ("38", "0", "38")
    project_ledger()
    check_ledger_explains(api, "w1", project_ledger)


def test_a_hold_backed_by_an_earlier_grant_does_not_keep_the_allowance(
    api: Api, now: FakeClock
) -> None:
    create(api, "w1", "pro")
    charge(api, "w1", "1500")  # 1000 of the allowance left
    grant(api, "w1", "1000", "manual", priority=1)  # spent before the allowance (priority 10)
    rid = reserve(api, "w1", "1000")  # in burn-down order: the manual grant's 1000
    now.set(utc(2026, 2, 28))
    # the 1000 left of the allowance are not what the hold reserved: they expire and roll
    # over (1000, under pro's cap of 1250); 2500 are granted
    assert advance("w1") == Advanced("w1", True, Decimal(1000), Decimal(3500))
    assert money(api, "w1") == ("4500", "1000", "3500")
    commit(api, "w1", rid, "1000")  # from the manual grant
    assert advance("w1") == Advanced("w1", False, ZERO, ZERO)
    assert money(api, "w1") == ("3500", "0", "3500")


# -- burn-down order ------------------------------------------------------------------------


def test_burn_down_worked_example_from_the_issue(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    # A(p1, T+10, 50), B(p1, T+20, 80), C(p2, never, 100), charged 90 -> A 0, B 40, C 100
    create(api, "w1", "enterprise", allowance="0")
    assert money(api, "w1") == ("0", "0", "0")
    a = grant(api, "w1", "50", "promo", expires_at=T0 + 10 * DAY, priority=1)
    now.advance()
    b = grant(api, "w1", "80", "promo", expires_at=T0 + 20 * DAY, priority=1)
    now.advance()
    c = grant(api, "w1", "100", "promo", priority=2)
    charge(api, "w1", "90")
    assert buckets(api, "w1") == [
        ("promo", "40", iso(T0 + 20 * DAY), 1),
        ("promo", "100", None, 2),
    ]
    project_ledger()
    left = {line["grant_id"]: line["remaining"] for line in grant_lines(api, "w1")}
    assert left == {a["grant_id"]: "0", b["grant_id"]: "40", c["grant_id"]: "100"}
    check_ledger_explains(api, "w1", project_ledger)


def test_burn_down_priority_case(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    # OpenMeter's rule: the lowest priority number first; at equal priority the soonest expiry;
    # then promotional before paid, then the oldest.
    create(api, "w1", "enterprise", allowance="0")
    soon, later = T0 + 5 * DAY, T0 + 30 * DAY
    x = grant(api, "w1", "30", "manual", priority=5)  # never expires, but priority 5
    now.advance()
    y = grant(api, "w1", "20", "promo", expires_at=later, priority=1)
    now.advance()
    w = grant(api, "w1", "15", "purchase", expires_at=soon, priority=1)  # paid
    now.advance()
    z = grant(api, "w1", "10", "promo", expires_at=soon, priority=1)  # promotional, newest
    now.advance()
    z2 = grant(api, "w1", "10", "promo", expires_at=soon, priority=1)  # same as z, newer
    # order: z (promo, soon, oldest), z2, w (paid, soon), y (later), x (priority 5)
    assert [(s, r) for s, r, _, _ in buckets(api, "w1")] == [
        ("promo", "10"),
        ("promo", "10"),
        ("purchase", "15"),
        ("promo", "20"),
        ("manual", "30"),
    ]
    charge(api, "w1", "42")  # z 10, z2 10, w 15, then 7 of y
    project_ledger()
    left = {line["grant_id"]: line["remaining"] for line in grant_lines(api, "w1")}
    assert left == {
        z["grant_id"]: "0",
        z2["grant_id"]: "0",
        w["grant_id"]: "0",
        y["grant_id"]: "13",
        x["grant_id"]: "30",
    }
    charge(api, "w1", "20")  # y's 13, then 7 of x
    assert buckets(api, "w1") == [("manual", "23", None, 5)]
    check_ledger_explains(api, "w1", project_ledger)


def test_burn_down_rollover_case(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    # pro (2500 a month, rollover cap 1250) with a 1000-credit top-up that never expires
    create(api, "w1", "pro")
    grant(api, "w1", "1000", "purchase")
    charge(api, "w1", "1000")  # from the allowance (priority 10) before the purchase (20)
    assert [(s, r) for s, r, _, _ in buckets(api, "w1")] == [
        ("monthly", "1500"),
        ("purchase", "1000"),
    ]
    now.set(utc(2026, 2, 28))
    # 1500 unused: expire 1500, roll over 1250, grant 2500; the purchase stays
    assert advance("w1") == Advanced("w1", True, Decimal(1500), Decimal(3750))
    assert money(api, "w1") == ("4750", "0", "4750")

    now.advance(DAY)
    charge(api, "w1", "4000")  # rollover and allowance (3750), then 250 of the purchase
    assert buckets(api, "w1") == [("purchase", "750", None, 20)]
    now.set(utc(2026, 3, 31))
    # nothing of the allowance left: no expiry, no rollover
    assert advance("w1") == Advanced("w1", True, ZERO, Decimal(2500))
    assert money(api, "w1") == ("3250", "0", "3250")

    now.advance(DAY)
    charge(api, "w1", "2000")  # 500 of the allowance left
    now.set(utc(2026, 4, 30))
    assert advance("w1") == Advanced("w1", True, Decimal(500), Decimal(3000))
    assert money(api, "w1") == ("3750", "0", "3750")  # 500 rolled + 2500 + 750 purchase
    project_ledger()
    check_ledger_explains(api, "w1", project_ledger)


# -- welcome bonus --------------------------------------------------------------------------


def test_the_trial_plan_starts_with_a_welcome_bonus_that_never_expires(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    body = create(api, "trial", "trial")
    assert (body["balance"], body["allowance"]) == ("1000", "0")
    assert buckets(api, "trial") == [("welcome", "1000", None, 10)]
    create(api, "free")
    assert buckets(api, "free") == [("monthly", "50", iso(utc(2026, 2, 28)), 10)]
    project_ledger()
    (line,) = grant_lines(api, "trial")
    assert (line["source"], line["credits"], line["remaining"], line["expires_at"]) == (
        "welcome",
        "1000",
        "1000",
        None,
    )
    assert [line["source"] for line in grant_lines(api, "free")] == ["monthly"]

    charge(api, "trial", "100")
    now.set(utc(2027, 3, 1))  # a year later: the period moves on, the bonus stays
    assert advance("trial") == Advanced("trial", True, ZERO, ZERO)
    assert money(api, "trial") == ("900", "0", "900")
    assert get(api, "trial")["period"]["end"] == iso(utc(2027, 3, 31))
    # the bonus is granted once: a plan change grants no other
    ok(api("PUT", path("trial"), {"plan": "free"}), 200)
    assert money(api, "trial") == ("950", "0", "950")
    project_ledger()
    check_ledger_explains(api, "trial", project_ledger)


# -- promo codes ----------------------------------------------------------------------------


def test_promo_code_definition(api: Api, now: FakeClock) -> None:
    terms = {
        "expires_at": iso(utc(2026, 3, 1)),
        "credits_expire_in_days": 7,
        "max_redemptions": 2,
    }
    created = ok(define(api, "spring-25", "25", **terms), 201)
    assert created == {
        "code": "SPRING-25",
        "credits": "25",
        "expires_at": iso(utc(2026, 3, 1)),
        "credits_expire_at": None,
        "credits_expire_in_days": 7,
        "max_redemptions": 2,
        "redeemed": 0,
    }
    # the same definition again (codes are case-insensitive) answers it
    assert ok(define(api, "SPRING-25", "25.000", **terms), 200) == created
    # another definition under the taken code is a conflict
    for other in (
        {**terms, "max_redemptions": 3},
        {**terms, "credits_expire_in_days": 8},
        {"credits_expire_in_days": 7, "max_redemptions": 2},
    ):
        problem(define(api, "Spring-25", "25", **other), 409, "promo-code-exists")
    problem(define(api, "spring-25", "26", **terms), 409, "promo-code-exists")


def test_promo_code_redemption(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    for wallet_id in ("w1", "w2", "w3"):
        create(api, wallet_id)
    ok(define(api, "SPRING25", "25", credits_expire_in_days=7, max_redemptions=2), 201)
    now.advance(timedelta(hours=2))
    body = ok(redeem(api, "w1", "spring25"), 201)  # case-insensitive
    expires = iso(T0 + timedelta(hours=2) + 7 * DAY)
    assert body.keys() == {"grant_id", "credits", "source", "priority", "expires_at"}
    assert (body["credits"], body["source"], body["priority"], body["expires_at"]) == (
        "25",
        "promo",
        10,
        expires,
    )
    assert money(api, "w1") == ("75", "0", "75")
    assert ("promo", "25", expires, 10) in buckets(api, "w1")

    # once per wallet, whatever the spelling
    problem(redeem(api, "w1", "Spring25"), 409, "promo-code-already-redeemed")
    assert money(api, "w1") == ("75", "0", "75")

    # with an Idempotency-Key a retry replays the first answer
    key = {"Idempotency-Key": "redeem-w2"}
    first = ok(redeem(api, "w2", "SPRING25", key), 201)
    assert ok(redeem(api, "w2", "spring25", key), 201) == first
    assert money(api, "w2") == ("75", "0", "75")

    # the cap: two redemptions
    problem(redeem(api, "w3", "SPRING25"), 409, "promo-code-exhausted")
    assert money(api, "w3") == ("50", "0", "50")
    assert (
        ok(define(api, "SPRING25", "25", credits_expire_in_days=7, max_redemptions=2), 200)[
            "redeemed"
        ]
        == 2
    )

    # the grant is listed with its reason, and expires on its own
    project_ledger()
    line = grant_lines(api, "w1")[0]
    assert (line["grant_id"], line["source"], line["reason"]) == (
        body["grant_id"],
        "promo",
        "promo code SPRING25",
    )
    now.set(T0 + timedelta(hours=2) + 7 * DAY)
    assert advance("w1") == Advanced("w1", False, Decimal(25), ZERO)
    assert money(api, "w1") == ("50", "0", "50")


def test_promo_code_credits_expire_at_a_fixed_time(api: Api, now: FakeClock) -> None:
    create(api, "w1")
    fixed = utc(2026, 2, 14, 12)
    ok(define(api, "VALENTINE", "14.5", credits_expire_at=iso(fixed)), 201)
    body = ok(redeem(api, "w1", "valentine"), 201)
    assert (body["credits"], body["expires_at"]) == ("14.5", iso(fixed))
    # no credit expiry at all: the credits never expire
    ok(define(api, "FOREVER", "5"), 201)
    assert ok(redeem(api, "w1", "FOREVER"), 201)["expires_at"] is None
    assert money(api, "w1") == ("69.5", "0", "69.5")


def test_an_expired_or_unknown_code_redeems_nothing(
    api: Api, now: FakeClock, table_items: Any
) -> None:
    create(api, "w1")
    ok(define(api, "SHORT", "10", expires_at=iso(T0 + DAY)), 201)
    now.set(T0 + DAY + timedelta(seconds=1))
    before = table_items()
    problem(redeem(api, "w1", "SHORT"), 409, "promo-code-expired")
    problem(redeem(api, "w1", "NOSUCHCODE"), 404, "promo-code-not-found")
    assert table_items() == before


def test_a_promo_code_redeems_until_its_last_moment(api: Api, now: FakeClock) -> None:
    create(api, "w1")
    ok(define(api, "LASTCALL", "10", expires_at=iso(T0 + DAY)), 201)
    now.set(T0 + DAY)
    assert ok(redeem(api, "w1", "LASTCALL"), 201)["credits"] == "10"


def test_a_code_whose_credits_have_expired_is_not_redeemed(
    api: Api, now: FakeClock, table_items: Any
) -> None:
    create(api, "w1")
    ok(define(api, "BLACKFRIDAY", "40", credits_expire_at=iso(T0 + 2 * DAY)), 201)
    now.set(T0 + 3 * DAY)
    before = table_items()
    problem(redeem(api, "w1", "BLACKFRIDAY"), 409, "promo-code-expired")
    assert table_items() == before


def test_an_idempotency_key_reused_for_another_code_is_a_conflict(api: Api, now: FakeClock) -> None:
    create(api, "w1")
    ok(define(api, "ALPHA", "10"), 201)
    ok(define(api, "BRAVO", "20"), 201)
    key = {"Idempotency-Key": "signup-bonus"}
    ok(redeem(api, "w1", "ALPHA", key), 201)
    problem(redeem(api, "w1", "BRAVO", key), 409, "idempotency-key-reused")
    assert money(api, "w1") == ("60", "0", "60")


def test_promo_redemption_needs_an_existing_wallet(api: Api, now: FakeClock) -> None:
    ok(define(api, "WELCOME5", "5"), 201)
    problem(redeem(api, "ghost", "WELCOME5"), 404, "wallet-not-found")
    # the failed attempt did not count against the code
    assert ok(define(api, "WELCOME5", "5"), 200)["redeemed"] == 0


# -- referrals ------------------------------------------------------------------------------


def test_a_referral_rewards_both_wallets_once(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    for wallet_id in ("alice", "bob", "carol"):
        create(api, wallet_id)
    body = ok(refer(api, "bob", "alice"), 201)
    assert body["wallet_id"] == "bob" and body["referrer_wallet_id"] == "alice"
    for side in ("grant", "referrer_grant"):
        assert {k: v for k, v in body[side].items() if k != "grant_id"} == {
            "credits": "500",
            "source": "referral",
            "priority": 10,
            "expires_at": None,
        }
    assert body["grant"]["grant_id"] != body["referrer_grant"]["grant_id"]
    assert money(api, "bob") == money(api, "alice") == ("550", "0", "550")

    # the same referral again answers the same and credits nothing
    assert ok(refer(api, "bob", "alice"), 201) == body
    assert money(api, "bob") == money(api, "alice") == ("550", "0", "550")
    # a wallet is referred once
    problem(refer(api, "bob", "carol"), 409, "already-referred")
    assert money(api, "carol") == ("50", "0", "50")

    project_ledger()
    (line,) = [g for g in grant_lines(api, "alice") if g["source"] == "referral"]
    assert (line["grant_id"], line["reason"]) == (
        body["referrer_grant"]["grant_id"],
        "referred bob",
    )
    (line,) = [g for g in grant_lines(api, "bob") if g["source"] == "referral"]
    assert (line["grant_id"], line["reason"]) == (body["grant"]["grant_id"], "referred by alice")


def test_a_referrer_is_rewarded_for_at_most_ten_referrals(api: Api, now: FakeClock) -> None:
    create(api, "host")
    for n in range(11):
        create(api, f"guest-{n}")
        body = ok(refer(api, f"guest-{n}", "host"), 201)
        assert body["grant"]["credits"] == "500"  # the referred wallet always gets its grant
        assert (body["referrer_grant"] is None) == (n == 10)
        assert money(api, f"guest-{n}")[0] == "550"
    assert money(api, "host")[0] == str(50 + 10 * 500)
    # the 11th referral, asked again, still answers without a referrer grant
    assert ok(refer(api, "guest-10", "host"), 201)["referrer_grant"] is None
    assert money(api, "host")[0] == "5050"


def test_a_wallet_cannot_refer_its_referrer(api: Api, now: FakeClock, table_items: Any) -> None:
    create(api, "alice")
    create(api, "bob")
    ok(refer(api, "bob", "alice"), 201)
    before = table_items()
    body = problem(refer(api, "alice", "bob"), 422, "invalid-request")
    assert fields(body) == ["referrer_wallet_id"]
    assert table_items() == before


def test_referral_refusals(api: Api, now: FakeClock, table_items: Any) -> None:
    create(api, "alice")
    before = table_items()
    assert fields(problem(refer(api, "alice", "alice"), 422, "invalid-request")) == [
        "referrer_wallet_id"
    ]
    problem(refer(api, "alice", "nobody"), 404, "wallet-not-found")
    problem(refer(api, "nobody", "alice"), 404, "wallet-not-found")
    assert table_items() == before


# -- adjustments ----------------------------------------------------------------------------


def test_a_positive_adjustment_is_a_manual_grant_with_its_reason(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    body = ok(adjust(api, "w1", "25", "goodwill: outage on 2026-01-30"), 201)
    assert body["adjustment_id"].startswith("grt_")
    assert (body["credits"], body["reason"]) == ("25", "goodwill: outage on 2026-01-30")
    assert money(api, "w1") == ("75", "0", "75")
    assert ("manual", "25", None, 10) in buckets(api, "w1")
    project_ledger()
    entry = ledger(api, "w1")[-1]
    assert (entry["transaction_id"], entry["type"], entry["credits"]) == (
        body["adjustment_id"],
        "grant",
        "25",
    )
    assert (entry["source"], entry["reason"], entry["balance_after"]) == (
        "manual",
        "goodwill: outage on 2026-01-30",
        "75",
    )
    line = grant_lines(api, "w1")[0]
    assert (line["grant_id"], line["reason"]) == (body["adjustment_id"], entry["reason"])


def test_a_negative_adjustment_takes_credits_back_even_below_zero(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    rid = reserve(api, "w1", "10")
    body = ok(adjust(api, "w1", "-45.5", "chargeback"), 201)
    assert body["adjustment_id"].startswith("adj_")
    assert (body["credits"], body["reason"]) == ("-45.5", "chargeback")
    assert money(api, "w1") == ("4.5", "10", "-5.5")  # below zero once the hold is counted
    assert get(api, "w1")["used"] == "0"  # a correction, not usage
    problem(
        api("POST", f"{path('w1')}/reservations", {"feature": "chat", "credits": "1"}),
        402,
        "insufficient-credits",
    )
    commit(api, "w1", rid, "10")
    assert money(api, "w1") == ("-5.5", "0", "-5.5")
    grant(api, "w1", "10", "purchase")  # repays the 5.5 first
    assert money(api, "w1") == ("4.5", "0", "4.5")
    project_ledger()
    entry = next(e for e in ledger(api, "w1") if e["type"] == "adjustment")
    assert (entry["transaction_id"], entry["credits"], entry["reason"]) == (
        body["adjustment_id"],
        "-45.5",
        "chargeback",
    )
    check_ledger_explains(api, "w1", project_ledger)


@pytest.mark.parametrize("credits", ["12", "-12"])
def test_an_adjustment_retried_with_its_key_applies_once(
    api: Api, now: FakeClock, table_items: Any, credits: str
) -> None:
    create(api, "w1")
    key = {"Idempotency-Key": "ticket-991"}
    first = ok(adjust(api, "w1", credits, "ticket 991", key), 201)
    before = table_items()
    now.advance()
    assert ok(adjust(api, "w1", credits, "ticket 991", key), 201) == first
    assert table_items() == before
    assert money(api, "w1")[0] == str(50 + int(credits))
    problem(adjust(api, "w1", credits, "ticket 992", key), 409, "idempotency-key-reused")


def test_an_adjustment_key_reused_with_the_other_sign_is_a_conflict(
    api: Api, now: FakeClock
) -> None:
    create(api, "w1")
    key = {"Idempotency-Key": "ticket-7"}
    ok(adjust(api, "w1", "5", "ticket 7", key), 201)
    problem(adjust(api, "w1", "-5", "ticket 7", key), 409, "idempotency-key-reused")
    assert money(api, "w1")[0] == "55"


# -- transfers ------------------------------------------------------------------------------


def test_a_transfer_debits_one_wallet_and_grants_the_other(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1", "enterprise", allowance="0")
    grant(api, "w1", "100", "purchase")  # never expires
    create(api, "w2")
    body = ok(transfer(api, "w1", "w2", "20"), 201)
    assert body["transfer_id"].startswith("xfr_") and body["grant_id"].startswith("grt_")
    assert (body["from_wallet_id"], body["to_wallet_id"], body["credits"]) == ("w1", "w2", "20")
    assert money(api, "w1") == ("80", "0", "80")
    assert money(api, "w2") == ("70", "0", "70")
    # the transfer grant: priority 20, spent after the allowance; drawn from credits that
    # never expire, it never expires either
    assert buckets(api, "w2") == [
        ("monthly", "50", iso(utc(2026, 2, 28)), 10),
        ("transfer", "20", None, 20),
    ]
    assert get(api, "w1")["used"] == "0"  # a transfer is not usage
    project_ledger()
    out = ledger(api, "w1")[-1]
    assert (out["transaction_id"], out["type"], out["credits"], out["balance_after"]) == (
        body["transfer_id"],
        "transfer",
        "-20",
        "80",
    )
    arrived = ledger(api, "w2")[-1]
    assert (arrived["transaction_id"], arrived["type"], arrived["source"]) == (
        body["grant_id"],
        "grant",
        "transfer",
    )
    assert (arrived["credits"], arrived["balance_after"]) == ("20", "70")
    check_ledger_explains(api, "w1", project_ledger)
    check_ledger_explains(api, "w2", project_ledger)


def test_a_transfer_keeps_the_soonest_expiry_of_what_it_moves(api: Api, now: FakeClock) -> None:
    create(api, "w1")  # 50 of allowance, expiring Feb 28
    promo_expiry = utc(2026, 2, 5)
    grant(api, "w1", "10", "promo", expires_at=promo_expiry)  # drawn first
    create(api, "w2", "enterprise", allowance="0")
    # 25 moved: the promo's 10, then 15 of the allowance: the soonest expiry is the promo's
    first = ok(transfer(api, "w1", "w2", "25"), 201)
    # 20 more: all from the allowance
    second = ok(transfer(api, "w1", "w2", "20"), 201)
    assert money(api, "w1") == ("15", "0", "15")
    assert buckets(api, "w2") == [
        ("transfer", "25", iso(promo_expiry), 20),
        ("transfer", "20", iso(utc(2026, 2, 28)), 20),
    ]
    assert first["grant_id"] != second["grant_id"]
    # moved credits cannot outlive what they were: they expire at those times
    now.set(promo_expiry)
    assert advance("w2") == Advanced("w2", False, Decimal(25), ZERO)
    now.set(utc(2026, 2, 28))
    assert advance("w2") == Advanced("w2", True, Decimal(20), ZERO)
    assert money(api, "w2") == ("0", "0", "0")


def test_transfer_refusals_write_nothing(api: Api, now: FakeClock, table_items: Any) -> None:
    create(api, "w1")
    create(api, "w2")
    reserve(api, "w1", "20")  # 30 available
    before = table_items()
    body = problem(transfer(api, "w1", "w2", "30.000001"), 402, "insufficient-credits")
    assert (body["available"], body["requested"]) == ("30", "30.000001")
    assert fields(problem(transfer(api, "w1", "w1", "1"), 422, "invalid-request")) == [
        "to_wallet_id"
    ]
    problem(transfer(api, "w1", "nobody", "1"), 404, "wallet-not-found")
    problem(transfer(api, "nobody", "w2", "1"), 404, "wallet-not-found")
    assert table_items() == before
    ok(transfer(api, "w1", "w2", "30"), 201)  # exactly what is available
    assert money(api, "w1") == ("20", "20", "0")


def test_a_transfer_retried_with_its_key_moves_credits_once(
    api: Api, now: FakeClock, table_items: Any
) -> None:
    create(api, "w1")
    create(api, "w2")
    key = {"Idempotency-Key": "move-7"}
    first = ok(transfer(api, "w1", "w2", "15", key), 201)
    before = table_items()
    now.advance()
    assert ok(transfer(api, "w1", "w2", "15", key), 201) == first
    assert table_items() == before
    assert (money(api, "w1")[0], money(api, "w2")[0]) == ("35", "65")
    problem(transfer(api, "w1", "w2", "16", key), 409, "idempotency-key-reused")
    # even once the source could no longer afford it, the retry is answered
    charge(api, "w1", "35")
    assert ok(transfer(api, "w1", "w2", "15", key), 201) == first


# -- voids ----------------------------------------------------------------------------------


def test_an_unused_grant_is_voided_once(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    promo = grant(api, "w1", "10", "promo")  # never expires: after the allowance
    manual = ok(adjust(api, "w1", "5", "test credit"), 201)
    charge(api, "w1", "30")  # from the allowance only
    assert money(api, "w1") == ("35", "0", "35")

    body = ok(void(api, "w1", promo["grant_id"]), 200)
    assert body == {"grant_id": promo["grant_id"], "status": "voided", "voided": "10"}
    assert money(api, "w1") == ("25", "0", "25")
    ok(void(api, "w1", manual["adjustment_id"]), 200)
    assert money(api, "w1") == ("20", "0", "20")
    assert buckets(api, "w1") == [("monthly", "20", iso(utc(2026, 2, 28)), 10)]

    project_ledger()
    entries = ledger(api, "w1")
    voids = [(e["type"], e["credits"], e["source"]) for e in entries if e["type"] == "void"]
    assert voids == [("void", "-10", "promo"), ("void", "-5", "manual")]
    # voiding again answers the same and takes nothing more
    assert ok(void(api, "w1", promo["grant_id"]), 200) == body
    assert money(api, "w1") == ("20", "0", "20")
    lines = {line["grant_id"]: line for line in grant_lines(api, "w1")}
    assert (lines[promo["grant_id"]]["status"], lines[promo["grant_id"]]["remaining"]) == (
        "voided",
        "0",
    )
    check_ledger_explains(api, "w1", project_ledger)


def test_a_void_retried_at_once_answers_the_same(api: Api, now: FakeClock) -> None:
    create(api, "w1")
    promo = grant(api, "w1", "10", "promo")
    first = ok(void(api, "w1", promo["grant_id"]), 200)
    assert ok(void(api, "w1", promo["grant_id"]), 200) == first


def test_a_grant_in_use_is_not_voided(api: Api, now: FakeClock, table_items: Any) -> None:
    create(api, "w1")
    # spent first: it expires before the allowance
    partly = grant(api, "w1", "10", "promo", expires_at=T0 + DAY)
    charge(api, "w1", "3")
    held = grant(api, "w1", "10", "referral")  # after the allowance
    rid = reserve(api, "w1", "60")  # 7 + 50 = 57 -> the hold reaches 3 into the referral
    assert money(api, "w1") == ("67", "60", "7")
    before = table_items()
    problem(void(api, "w1", partly["grant_id"]), 409, "grant-in-use")
    problem(void(api, "w1", held["grant_id"]), 409, "grant-in-use")
    assert table_items() == before
    ok(api("POST", f"{path('w1')}/reservations/{rid}/release"), 200)
    assert ok(void(api, "w1", held["grant_id"]), 200)["voided"] == "10"
    assert money(api, "w1") == ("57", "0", "57")


def test_a_grant_that_repaid_an_overdraft_is_in_use(
    api: Api, now: FakeClock, table_items: Any
) -> None:
    create(api, "w1")
    rid = reserve(api, "w1", "50")
    commit(api, "w1", rid, "55")  # 5 below zero
    repaying = ok(adjust(api, "w1", "15", "courtesy"), 201)  # 5 of it repays the deficit
    assert money(api, "w1") == ("10", "0", "10")
    before = table_items()
    problem(void(api, "w1", repaying["adjustment_id"]), 409, "grant-in-use")
    assert table_items() == before


def test_allowances_and_purchases_are_not_voidable(
    api: Api, now: FakeClock, table_items: Any, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1", "pro")
    purchase = grant(api, "w1", "100", "purchase")
    old_monthly = bucket_ids("w1")["monthly"]
    now.set(utc(2026, 2, 28))
    advance("w1")  # a new allowance, and a rollover grant
    project_ledger()
    before = table_items()
    for gid in (
        purchase["grant_id"],
        bucket_ids("w1")["monthly"],
        bucket_ids("w1")["rollover"],
        old_monthly,  # expired (and listed so)
    ):
        problem(void(api, "w1", gid), 409, "grant-not-voidable")
    assert table_items() == before
    assert money(api, "w1") == ("3850", "0", "3850")


def test_voiding_an_unknown_grant_is_404(api: Api, now: FakeClock, table_items: Any) -> None:
    create(api, "w1")
    create(api, "w2")
    own = bucket_ids("w1")["monthly"]
    before = table_items()
    for gid in (
        "grt_" + "0" * 23,  # well formed, nobody's
        bucket_ids("w2")["monthly"],  # another wallet's
        "not-a-grant",
        "grt_123",
        own.upper(),
        own + "0",
    ):
        problem(void(api, "w1", gid), 404, "grant-not-found")
    problem(void(api, "nobody", own), 404, "wallet-not-found")
    assert table_items() == before


# -- the grants list ------------------------------------------------------------------------


LINE_FIELDS = ("grant_id", "source", "credits", "remaining", "status", "expires_at", "reason")


def test_the_grants_list_shows_every_grant_newest_first_with_its_status(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")  # monthly 50, expires Feb 28
    now.advance()
    used = grant(api, "w1", "10", "promo", expires_at=utc(2026, 2, 1))
    now.advance()
    expiring = grant(api, "w1", "20", "promo", expires_at=utc(2026, 2, 3))
    now.advance()
    voided = ok(adjust(api, "w1", "7", "mistake"), 201)
    now.advance()
    active = grant(api, "w1", "100", "purchase")
    charge(api, "w1", "15")  # used: 10 (all), expiring: 5 -> 15 left
    ok(void(api, "w1", voided["adjustment_id"]), 200)
    now.set(utc(2026, 2, 3))
    assert advance("w1") == Advanced("w1", False, Decimal(15), ZERO)
    project_ledger()

    lines = grant_lines(api, "w1")
    monthly = lines[-1]["grant_id"]
    expected = [
        (active["grant_id"], "purchase", "100", "100", "active", None, None),
        (voided["adjustment_id"], "manual", "7", "0", "voided", None, "mistake"),
        (expiring["grant_id"], "promo", "20", "0", "expired", iso(utc(2026, 2, 3)), None),
        (used["grant_id"], "promo", "10", "0", "used", iso(utc(2026, 2, 1)), None),
        (monthly, "monthly", "50", "50", "active", iso(utc(2026, 2, 28)), None),
    ]
    assert [tuple(g[k] for k in LINE_FIELDS) for g in lines] == expected
    granted_at = [g["granted_at"] for g in lines]
    assert granted_at == [
        iso(T0 + timedelta(seconds=s)) for s in (4, 3, 2, 1, 0)
    ]  # the date of each grant
    check_ledger_explains(api, "w1", project_ledger)

    # paginated with the cursor
    for limit in (1, 2, 3):
        assert pages(api, f"{path('w1')}/grants", limit) == lines


def test_a_grants_status_does_not_change_when_another_grant_is_made(
    api: Api, now: FakeClock, project_ledger: Callable[[], None]
) -> None:
    create(api, "w1")
    charge(api, "w1", "10")
    rid = reserve(api, "w1", "30")
    now.set(utc(2026, 2, 28))
    advance("w1")  # 10 of the old allowance expire, the 30 held are kept
    commit(api, "w1", rid, "30")  # paid by the new period's credits
    assert advance("w1") == Advanced("w1", False, Decimal(30), ZERO)  # the kept 30 expire
    project_ledger()
    old = grant_lines(api, "w1")[-1]
    assert (old["credits"], old["remaining"]) == ("50", "0")
    now.advance(timedelta(hours=1))
    grant(api, "w1", "5", "promo")  # nothing to do with the old allowance
    project_ledger()
    assert grant_lines(api, "w1")[-1] == old


def test_the_grants_list_of_a_new_or_unknown_wallet(api: Api, now: FakeClock) -> None:
    create(api, "w1")
    # before the projector has run the list is empty, not an error
    assert ok(api("GET", f"{path('w1')}/grants"), 200) == {"items": [], "next_cursor": None}
    problem(api("GET", f"{path('nobody')}/grants"), 404, "wallet-not-found")


# -- a year -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def projector_app(aws: Any) -> Any:
    """``functions/ledger_projector/app.py``, imported once ``aws`` has set the functions'
    environment (Powertools reads it at import)."""
    return handler_module("ledger_projector.app")


class LedgerMirror:
    """The ledger as the projector makes it (``credit_meter.reports.projector.project_record``),
    from the stream records written since the last look, kept in memory; ``project`` then runs the
    projector's Lambda handler over every record, as the stream would have delivered them.

    Why not ``project_ledger`` after every step: moto serialises stream records slowly, and it
    deep-copies the whole table, its stream included, on every transaction, so a year of
    steps would take minutes. The mirror reads the records from moto's stream in-process and
    then drops them from it (keeping the sequence numbers going), so the table stays small.
    """

    def __init__(self, table_name: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self._table = lambda: dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(
            table_name
        )
        self.records: list[dict[str, Any]] = []  # as the stream delivers them
        self.entries: dict[tuple[str, int], dict[str, Any]] = {}  # (pk, seq) -> entry
        self.lines: dict[tuple[str, str], dict[str, Any]] = {}  # (pk, sk) -> grant line

    @property
    def shard(self) -> Any:
        """The table's stream shard, looked up each time: a transaction that moto refuses
        puts back its deep copy of the table, stream included (the wallet's creation is one,
        and an upgrade tries it first)."""
        return self._table().stream_shard

    def catch_up(self) -> None:
        shard = self.shard
        for stream_record in shard.items:
            record = copy.deepcopy(stream_record.to_json())
            record["dynamodb"].pop("ApproximateCreationDateTime", None)
            self.records.append(record)
            projection = projector.project_record(record)
            for entry in projection.entries:
                self.entries[(entry["pk"], entry["seq"])] = entry
            for key, values in projection.grant_lines:
                self.lines.setdefault((key["pk"], key["sk"]), {}).update(values)
        shard.starting_sequence_number += len(shard.items)
        shard.items.clear()

    def project(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        """Every record so far through the ledger projector's handler, in one batch."""
        self.catch_up()
        event = {
            "Records": [
                {**r, "eventID": str(n), "eventSourceARN": "arn:aws:dynamodb:stream"}
                for n, r in enumerate(self.records)
            ]
        }
        assert handler(event, FakeContext()) == {"batchItemFailures": []}

    def check(self, wallet_id: str) -> None:
        """What ``check_ledger_explains`` checks, on the mirror and the stored wallet."""
        self.catch_up()
        wallet = wallet_item(wallet_id)
        pk = items.wallet_pk(wallet_id)
        entries = [e for (p, _), e in sorted(self.entries.items()) if p == pk]
        assert [e["seq"] for e in entries] == list(range(1, int(wallet["seq"]) + 1))
        running = ZERO
        for entry in entries:
            running += entry["credits"]
            assert entry["balance_after"] == running, entry
        balance = Decimal(wallet["bal"])
        assert running == balance
        assert Decimal(wallet["avail"]) == balance - Decimal(wallet["held"])
        left = {
            v.bucket.id: v.remaining
            for v in wallets.remaining(wallet_record.buckets(wallet), Decimal(wallet["drawn"]))
        }
        lines = {sk: line for (p, sk), line in self.lines.items() if p == pk}
        assert set(left) <= {line["grant_id"] for line in lines.values()}
        used_total = ZERO
        for line in lines.values():
            expired, voided = ends_of(line["grant_id"], entries)
            remaining = left.get(line["grant_id"], ZERO)
            used = line["credits"] - remaining - expired - voided
            assert used >= 0, line
            used_total += used
            if line.get("status") == "expired":
                assert expired > 0, line
            assert (line.get("status") == "voided") == (voided > 0), line
        assert sum(left.values(), ZERO) == max(balance, ZERO)
        kinds = ("charge", "reservation", "transfer", "adjustment")
        debits = -sum((e["credits"] for e in entries if e["type"] in kinds), ZERO)
        overage = sum((e["credits"] for e in entries if e["type"] == "overage"), ZERO)
        assert used_total + overage + max(-balance, ZERO) == debits


def test_a_wallet_lives_through_a_year(
    api: Api, now: FakeClock, fresh_table: str, projector_app: Any
) -> None:
    """Twelve monthly resets with top-ups, promo codes that expire mid-period, charges,
    reservations (two left open across a reset), an upgrade and a downgrade; after every step
    the ledger explains every credit."""
    wid = "year"
    create(api, wid, "starter")  # 500 a month, period Jan 31 -> Feb 28
    mirror = LedgerMirror(fresh_table)

    def check() -> None:
        mirror.check(wid)

    check()
    start = utc(2026, 1, 31)
    carried: str | None = None  # a hold opened before a reset, committed after it
    balances = []
    for month in range(12):
        if carried is not None:
            # the hold from the last period commits 45 (paid by the new period's credits:
            # the 50 the reset kept for it are spent after all else); the reset job then
            # expires those 50
            now.set(start + timedelta(hours=12))
            assert commit(api, wid, carried, "45")["released"] == "5"
            carried = None
            check()
            assert advance(wid) == Advanced(wid, False, Decimal(50), ZERO)
            check()
        # redeem this month's code: 20 credits for 10 days (spent before the allowance)
        now.set(start + DAY)
        ok(define(api, f"Y26M{month:02d}", "20", credits_expire_in_days=10), 201)
        ok(redeem(api, wid, f"y26m{month:02d}"), 201)
        check()
        now.set(start + 2 * DAY)
        charge(api, wid, "12")  # 12 of the promo's 20
        check()
        if month in (2, 6, 10):
            grant(api, wid, "100", "purchase")  # a top-up: never expires, spent last
            check()
        if month == 3:
            ok(api("PUT", path(wid), {"plan": "pro"}), 200)  # +2000 at once
            check()
        if month == 8:
            body = ok(api("PUT", path(wid), {"plan": "starter"}), 200)
            assert (body["plan"], body["pending_plan"]) == ("pro", "starter")
        now.set(start + 11 * DAY)
        assert advance(wid) == Advanced(wid, False, Decimal(8), ZERO)  # the promo's 8 left
        check()
        now.set(start + 12 * DAY)
        rid = reserve(api, wid, "40")
        now.set(start + 13 * DAY)
        assert commit(api, wid, rid, "30")["released"] == "10"  # from the allowance
        check()
        end = wallets.add_month(start, 31)
        if month in (4, 9):
            now.set(end - timedelta(hours=1))
            carried = reserve(api, wid, "50")  # still open at the reset
        now.set(end)
        assert advance(wid).reset
        assert advance(wid) == Advanced(wid, False, ZERO, ZERO)  # a duplicate: nothing
        check()
        balances.append(money(api, wid)[0])
        start = end

    assert period(api, wid) == (iso(utc(2027, 1, 31)), iso(utc(2027, 2, 28)))
    # Each month: a promo of 20 (12 charged, 8 expired), 30 committed from the allowance; in
    # months 5 and 10 also 45 committed by a hold kept across the reset (the 50 kept expire).
    # Months 0-2 starter (500, no rollover), 3-8 pro (2500, rollover up to 1250: upgraded in
    # 3, downgraded at the reset after 8), 9-11 starter. Top-ups of 100 in months 2, 6 and 10
    # are never touched. Balances after each reset:
    #   m0, m1: 470 of 500 expire, +500                                         500, 500
    #   m2: +100 purchase                                                           600
    #   m3: upgrade +2000: 2470 of 2500 left -> rolled 1250 + 2500 + 100           3850
    #   m4: 3720 left, 50 of it held at the reset and kept: 3670 expire,
    #       1250 rolled + 2500: 3820 - 3670 + 3750                                 3900
    #   m5: 45 committed, the 50 kept expire; 3675 left at the reset -> 1250 + 2500 3850
    #   m6: +100                                                                    3950
    #   m7:                                                                         3950
    #   m8: pro's rollover 1250 + starter's 500 + 200 purchases                    1950
    #   m9: 1720 left, 50 kept: 1670 expire unrolled (starter), +500: 1920 - 1670 + 500  750
    #   m10: 45 committed, 50 expire -> 655; +100; 425 left expire, +500           800
    #   m11:                                                                        800
    assert balances == [
        "500",
        "500",
        "600",
        "3850",
        "3900",
        "3850",
        "3950",
        "3950",
        "1950",
        "750",
        "800",
        "800",
    ]
    body = get(api, wid)
    assert (body["plan"], body["allowance"], body["used"], body["held"]) == (
        "starter",
        "500",
        "0",
        "0",
    )
    # the ledger as the API shows it is the one checked along the way, and explains it all
    mirror.project(projector_app.handler)
    shown = ledger(api, wid)
    mirrored = [e for (p, _), e in sorted(mirror.entries.items()) if p == items.wallet_pk(wid)]
    assert [(e["transaction_id"], e["credits"], e["balance_after"]) for e in shown] == [
        (e["transaction_id"], fmt(e["credits"]), fmt(e["balance_after"])) for e in mirrored
    ]
    check_ledger_explains(api, wid, lambda: None)  # projected just above
    lines = grant_lines(api, wid)
    assert sum(1 for g in lines if g["source"] == "promo" and g["status"] == "expired") == 12
    assert [g["remaining"] for g in lines if g["source"] == "purchase"] == ["100"] * 3


def test_a_wallet_holds_at_most_its_maximum_of_grants(api: Api, now: FakeClock) -> None:
    """Every open grant is part of the hot wallet item: past the maximum, new grants are
    refused with 409 (nothing written), while the allowance's reset still works."""
    from credit_meter.billing.buckets import MAX_BUCKETS

    create(api, "w1")  # the free allowance: one grant
    for _n in range(MAX_BUCKETS - 1):
        now.advance(timedelta(seconds=1))
        grant(api, "w1", "1", "manual")
    before = get(api, "w1")
    assert len(before["buckets"]) == MAX_BUCKETS
    problem(
        api("POST", f"{path('w1')}/grants", {"credits": "1", "source": "manual"}),
        409,
        "too-many-grants",
    )
    assert get(api, "w1") == before
    # spending one up makes room again
    charge(api, "w1", "50")  # the allowance, spent first (it expires soonest)
    grant(api, "w1", "1", "manual")
    assert len(get(api, "w1")["buckets"]) == MAX_BUCKETS
    now.set(utc(2026, 2, 28))
    assert advance("w1").reset  # the new allowance is never refused
