"""Usage reports through the real metering handler: the wallet's usage summary, its day and
month series, the activity log (filters, priced lines, tokens, paging), its CSV export and the
organisation's usage; then the rollups themselves (replays add nothing, and they always equal
``usage.fold`` of the ledger) and ``Catalog.itemise``.

Most tests read one seeded world (``world``, built once for the module on a table of its own),
whose every expected number below was worked out by hand from the prices of ``catalog.json``
(token meters per 1,000 tokens: fast 0.02 / 0.08 / 0.08, standard 0.1 / 0.4 / 0.4, advanced
0.2 / 0.8 / 0.8 for input / output / reasoning). Times are UTC:

``acme-main`` (starter, 500 a period, organisation ``acme`` from its creation, 2026-03-10 12:00,
so its periods start on the 10th):

====  ===================  ==========================================================  =====
seq   at                   what                                                        cost
====  ===================  ==========================================================  =====
1     03-10 12:00:00       the allowance (grant 500)
2     03-10 13:00:00       charge chat/ana: gpt-4o-mini 10,000 in + 5,000 out          0.6
3     03-10 14:00:00       charge images/bob: 2 image_hd + 1 image_standard            20
4     03-10 23:59:59       charge chat/ana: claude-sonnet 20,000 in + 10,000 out       6
5     03-11 00:00:00       charge agent (no member), 2.5 credits, no usage lines       2.5
6     03-11 01:05:00       commit of a 30 hold agent/bob: o3 10,000 in, 5,000 out,     12
                           5,000 reasoning, 20 app_call, 4 task_completed
7     03-11 02:05:00       commit without a cost of a 3 hold chat/ana                  3
8     03-11 03:05:00       release of a 5 hold (chat)                                  —
9     03-11 04:05:00       a 10 hold voice/cy expired by the sweeper                   —
10    03-11 05:00:00       adjustment −1, reason ``=SUM(A1)``                          (not usage)
11    03-31 23:59:59       charge voice/cy: 2 voice_minute + 2 meeting_minute          9
12    04-01 00:00:00       charge chat/ana: gemini-pro 2,500 out + claude-opus         2
                           5,000 in
13-14 04-10 00:00:30       the reset: the allowance's 435.9 left expire (8 kept for
                           the open hold), the new 500 granted
15    04-10 00:01:00       commit of an 8 hold (opened 04-09 23:59) agent:             7
                           3 compute_minute + gpt-4o 10,000 out
16    04-10 00:02:00       the 8 kept credits expire
====  ===================  ==========================================================  =====

``acme-lab`` (pro; created alone, without an organisation, then adopted by ``acme`` with a
PUT): 03-11 10:00 chat/ana claude-haiku 50,000 in + 25,000 out (3); 03-12 09:00 batch/eve 40
credits; 04-02 09:00 search/dee 10 web_search (free) + gemini-flash 100,000 in (2).
``solo`` (free, organisation ``solo-co``, alone in it): 03-11 11:00 chat/ana 7 credits.
``globex-1`` (free, organisation ``globex``): 03-11 12:00 chat/zed 1.5 credits.

Requests come from an owner of ``acme`` with both scopes (``tests/principals.py``); the other
organisations' wallets are read and written as their own owners (``SOLO``, ``GLOBEX``).

The reports are read at 2026-04-12 12:00 unless a test says otherwise.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit_meter.billing.periods import Periods
from credit_meter.billing.plans import Plans
from credit_meter.core import usage
from credit_meter.core.catalog import UsageLine, catalog
from credit_meter.core.errors import Conflict
from credit_meter.metering.service import Metering
from credit_meter.storage.store import from_item
from devtools import table
from devtools.apigw import FakeContext, http_event
from tests.helpers import FakeClock, frozen_clock, ok, problem
from tests.principals import org_token, token

Api = Callable[..., tuple[int, dict[str, str], Any]]
Json = dict[str, Any]

A = "/v1/wallets/acme-main"
B = "/v1/wallets/acme-lab"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 4, 12, 12, 0, tzinfo=UTC)
ACME = org_token("acme")
SOLO = org_token("solo-co")
GLOBEX = org_token("globex")


@pytest.fixture(scope="module")
def api(api: Api) -> Api:
    """The conftest's caller, as an owner of acme unless told otherwise (``as_=``)."""
    return functools.partial(api, as_=ACME)


@pytest.fixture
def now() -> Iterator[FakeClock]:
    """The reports' clock: 2026-04-12 12:00 UTC unless the test moves it."""
    with frozen_clock(NOW) as fake:
        yield fake


# -- helpers --------------------------------------------------------------------------------


def tok(meter: str, model: str, quantity: int) -> Json:
    return {"meter": meter, "model": model, "quantity": quantity}


def unit(meter: str, quantity: int | str) -> Json:
    return {"meter": meter, "quantity": quantity}


def charge(api: Api, path: str, feature: str, member: str | None = None, **cost: Any) -> Json:
    body = {"feature": feature, **cost}
    if member is not None:
        body["member_id"] = member
    return ok(api("POST", f"{path}/charges", body), 201)


def reserve(api: Api, path: str, feature: str, credits: str, **extra: Any) -> str:
    body = {"feature": feature, "credits": credits, **extra}
    return str(ok(api("POST", f"{path}/reservations", body), 201)["reservation_id"])


def commit(api: Api, path: str, rid: str, body: Any = None) -> Json:
    return ok(api("POST", f"{path}/reservations/{rid}/commit", body))


def release(api: Api, path: str, rid: str) -> Json:
    return ok(api("POST", f"{path}/reservations/{rid}/release"))


def sweep() -> int:
    report = Metering().sweep()
    assert report.failed == {}
    return report.expired


def series(api: Api, path: str, query: str = "") -> Json:
    return ok(api("GET", f"{path}/usage", query=query))


def points(body: Json) -> dict[str, tuple[str, int, int]]:
    """The non-zero points of a series: date -> (credits, actions, returned)."""
    return {
        p["date"]: (p["credits"], p["actions"], p["returned"])
        for p in body["points"]
        if (p["credits"], p["actions"], p["returned"]) != ("0", 0, 0)
    }


def grouped(body: Json) -> dict[str, list[tuple[str | None, str]]]:
    """The groups of each point that has some: date -> [(key, credits), ...] in order."""
    return {
        p["date"]: [(g["key"], g["credits"]) for g in p["groups"]]
        for p in body["points"]
        if p["groups"]
    }


def log(api: Api, path: str, query: str = "") -> Json:
    return ok(api("GET", f"{path}/transactions", query=query))


def all_pages(api: Api, path: str, query: str) -> list[list[Json]]:
    """Every page of the activity log for these filters, following ``next_cursor``."""
    pages: list[list[Json]] = []
    cursor = None
    while True:
        q = query + (f"&cursor={cursor}" if cursor else "")
        body = log(api, path, q)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not move on"


def ids(entries: list[Json]) -> list[str]:
    return [e["transaction_id"] for e in entries]


def rollups(items: list[Json]) -> list[Json]:
    return [i for i in items if i["sk"]["S"].startswith(usage.ROLLUP_PREFIX)]


# -- the seeded world -----------------------------------------------------------------------


def build_world(api: Api, project_ledger: Callable[[], None]) -> Json:
    seen: Json = {}
    with frozen_clock(T0) as t:
        ok(api("PUT", A, {"plan": "starter", "org_id": "acme"}), 201)
        t.set(T0 + timedelta(minutes=10))
        # made before organisations were required: the API shows it to nobody until the
        # platform (credits:admin) adopts it into an organisation
        created, view = Plans().put_wallet("acme-lab", "pro")
        assert (created, view.org_id) == (True, None)
        t.set(T0 + timedelta(minutes=20))
        joined = ok(api("PUT", B, {"plan": "pro", "org_id": "acme"}), 200)
        assert joined["org_id"] == "acme"
        assert ok(api("PUT", "/v1/wallets/solo", {"plan": "free"}, as_=SOLO), 201)["org_id"] == (
            "solo-co"
        )
        globex = {"plan": "free", "org_id": "globex"}
        ok(api("PUT", "/v1/wallets/globex-1", globex, as_=GLOBEX), 201)

        def at(month: int, day: int, h: int, m: int = 0, s: int = 0) -> None:
            t.set(datetime(2026, month, day, h, m, s, tzinfo=UTC))

        at(3, 10, 13)
        mini = [
            tok("input_tokens", "gpt-4o-mini", 10000),
            tok("output_tokens", "gpt-4o-mini", 5000),
        ]
        assert charge(api, A, "chat", "ana", usage=mini)["charged"] == "0.6"
        at(3, 10, 14)
        images = [unit("image_hd", 2), unit("image_standard", 1)]
        assert charge(api, A, "images", "bob", usage=images)["charged"] == "20"
        at(3, 10, 23, 59, 59)
        sonnet = [
            tok("input_tokens", "claude-sonnet", 20000),
            tok("output_tokens", "claude-sonnet", 10000),
        ]
        assert charge(api, A, "chat", "ana", usage=sonnet)["charged"] == "6"
        at(3, 11, 0)
        assert charge(api, A, "agent", credits="2.5")["charged"] == "2.5"
        at(3, 11, 1)
        rid = reserve(api, A, "agent", "30", member_id="bob")
        at(3, 11, 1, 5)
        agent = [
            tok("input_tokens", "o3", 10000),
            tok("output_tokens", "o3", 5000),
            tok("reasoning_tokens", "o3", 5000),
            unit("app_call", 20),
            unit("task_completed", 4),
        ]
        assert commit(api, A, rid, {"usage": agent})["charged"] == "12"
        at(3, 11, 2)
        rid = reserve(api, A, "chat", "3", member_id="ana")
        at(3, 11, 2, 5)
        assert commit(api, A, rid)["charged"] == "3"
        at(3, 11, 3)
        rid = reserve(api, A, "chat", "5")
        at(3, 11, 3, 5)
        assert release(api, A, rid)["released"] == "5"
        at(3, 11, 4)
        reserve(api, A, "voice", "10", member_id="cy", expires_in_seconds=60)
        at(3, 11, 4, 5)
        assert sweep() == 1
        at(3, 11, 5)
        adjust = {"credits": "-1", "reason": "=SUM(A1)"}
        ok(api("POST", f"{A}/adjustments", adjust), 201)

        at(3, 11, 10)
        haiku = [
            tok("input_tokens", "claude-haiku", 50000),
            tok("output_tokens", "claude-haiku", 25000),
        ]
        assert charge(api, B, "chat", "ana", usage=haiku)["charged"] == "3"
        at(3, 11, 11)
        charge(functools.partial(api, as_=SOLO), "/v1/wallets/solo", "chat", "ana", credits="7")
        at(3, 11, 12)
        globex_api = functools.partial(api, as_=GLOBEX)
        charge(globex_api, "/v1/wallets/globex-1", "chat", "zed", credits="1.5")
        at(3, 12, 9)
        charge(api, B, "batch", "eve", credits="40")

        at(3, 31, 23, 59, 59)
        voice = [unit("voice_minute", 2), unit("meeting_minute", 2)]
        assert charge(api, A, "voice", "cy", usage=voice)["charged"] == "9"
        at(4, 1, 0)
        mixed = [tok("output_tokens", "gemini-pro", 2500), tok("input_tokens", "claude-opus", 5000)]
        assert charge(api, A, "chat", "ana", usage=mixed)["charged"] == "2"
        at(4, 2, 9)
        search = [unit("web_search", 10), tok("input_tokens", "gemini-flash", 100000)]
        assert charge(api, B, "search", "dee", usage=search)["charged"] == "2"

        project_ledger()
        at(4, 5, 12)
        seen["summary_before_reset"] = ok(api("GET", f"{A}/usage/summary"))

        # a hold open across the reset is committed in the new period
        at(4, 9, 23, 59)
        rid = reserve(api, A, "agent", "8")
        at(4, 10, 0, 0, 30)
        assert Periods().advance("acme-main").reset
        at(4, 10, 0, 1)
        late = [unit("compute_minute", 3), tok("output_tokens", "gpt-4o", 10000)]
        assert commit(api, A, rid, {"usage": late}) == {
            "reservation_id": rid,
            "status": "committed",
            "charged": "7",
            "released": "1",
        }
        at(4, 10, 0, 2)
        Periods().advance("acme-main")  # the credits kept for the hold expire
        project_ledger()
    return seen


@pytest.fixture(scope="module")
def world(module_table: str, api: Api, project_ledger: Callable[[], None]) -> Json:
    return build_world(api, project_ledger)


# acme-main's ledger, newest first: seq -> (type, status, credits, balance_after, feature,
# member_id, held), worked out from the table of the module doc.
LEDGER = {
    16: ("expire", "posted", "-8", "493", None, None, None),
    15: ("reservation", "committed", "-7", "501", "agent", None, "8"),
    14: ("grant", "posted", "500", "508", None, None, None),
    13: ("expire", "posted", "-435.9", "8", None, None, None),
    12: ("charge", "posted", "-2", "443.9", "chat", "ana", None),
    11: ("charge", "posted", "-9", "445.9", "voice", "cy", None),
    10: ("adjustment", "posted", "-1", "454.9", None, None, None),
    9: ("reservation", "expired", "0", "455.9", "voice", "cy", "10"),
    8: ("reservation", "released", "0", "455.9", "chat", None, "5"),
    7: ("reservation", "committed", "-3", "455.9", "chat", "ana", "3"),
    6: ("reservation", "committed", "-12", "458.9", "agent", "bob", "30"),
    5: ("charge", "posted", "-2.5", "470.9", "agent", None, None),
    4: ("charge", "posted", "-6", "473.4", "chat", "ana", None),
    3: ("charge", "posted", "-20", "479.4", "images", "bob", None),
    2: ("charge", "posted", "-0.6", "499.4", "chat", "ana", None),
    1: ("grant", "posted", "500", "500", None, None, None),
}
AT = {
    16: "2026-04-10T00:02:00.000Z",
    15: "2026-04-10T00:01:00.000Z",
    14: "2026-04-10T00:00:30.000Z",
    13: "2026-04-10T00:00:30.000Z",
    12: "2026-04-01T00:00:00.000Z",
    11: "2026-03-31T23:59:59.000Z",
    10: "2026-03-11T05:00:00.000Z",
    9: "2026-03-11T04:05:00.000Z",
    8: "2026-03-11T03:05:00.000Z",
    7: "2026-03-11T02:05:00.000Z",
    6: "2026-03-11T01:05:00.000Z",
    5: "2026-03-11T00:00:00.000Z",
    4: "2026-03-10T23:59:59.000Z",
    3: "2026-03-10T14:00:00.000Z",
    2: "2026-03-10T13:00:00.000Z",
    1: "2026-03-10T12:00:00.000Z",
}


@pytest.fixture(scope="module")
def seq_ids(world: Json, api: Api) -> dict[int, str]:
    """acme-main's transaction ids by seq (the whole log is one page of 100)."""
    with frozen_clock(NOW):
        body = log(api, A, "limit=100")
    assert body["next_cursor"] is None
    assert len(body["items"]) == 16
    return {16 - i: e["transaction_id"] for i, e in enumerate(body["items"])}


# -- the summary ----------------------------------------------------------------------------


def test_summary_of_the_period_before_the_reset(world: Json) -> None:
    # read on 2026-04-05 12:00: the period of March 10 - April 10 holds seq 2-12
    assert world["summary_before_reset"] == {
        "wallet_id": "acme-main",
        "plan": "starter",
        "period": {"start": "2026-03-10T00:00:00.000Z", "end": "2026-04-10T00:00:00.000Z"},
        "renews_at": "2026-04-10T00:00:00.000Z",
        "allowance": "500",
        "used": "55.1",  # 0.6 + 20 + 6 + 2.5 + 12 + 3 + 9 + 2 (not the adjustment)
        "remaining": "443.9",
        "percent_used": "11.0",
        "held": "0",
        "balance": "443.9",
        "breakdown": [
            {"category": "images", "credits": "20", "tiers": []},
            {
                "category": "ai_usage",
                "credits": "18.6",
                "tiers": [
                    {
                        "tier": "advanced",
                        "credits": "11",
                        "models": [
                            {"model": "o3", "credits": "10"},
                            {"model": "claude-opus", "credits": "1"},
                        ],
                    },
                    {
                        "tier": "standard",
                        "credits": "7",
                        "models": [
                            {"model": "claude-sonnet", "credits": "6"},
                            {"model": "gemini-pro", "credits": "1"},
                        ],
                    },
                    {
                        "tier": "fast",
                        "credits": "0.6",
                        "models": [{"model": "gpt-4o-mini", "credits": "0.6"}],
                    },
                ],
            },
            {"category": "voice", "credits": "9", "tiers": []},
            # the credits-only charge (2.5) and the commit without a cost (3)
            {"category": "uncategorized", "credits": "5.5", "tiers": []},
            {"category": "tasks", "credits": "1", "tiers": []},
            {"category": "tool_calls", "credits": "1", "tiers": []},
        ],
        # the 7 UTC days ending April 5 (March 30 - April 5) used 9 + 2: 11 / 7 a day;
        # the 443.9 left last far beyond April 10
        "forecast": {"burn_rate_per_day": "1.571429", "runs_out_on": None},
    }


@pytest.mark.usefixtures("world")
def test_summary_after_the_reset_counts_the_late_commit_in_the_new_period(
    api: Api, now: FakeClock
) -> None:
    assert ok(api("GET", f"{A}/usage/summary")) == {
        "wallet_id": "acme-main",
        "plan": "starter",
        "period": {"start": "2026-04-10T00:00:00.000Z", "end": "2026-05-10T00:00:00.000Z"},
        "renews_at": "2026-05-10T00:00:00.000Z",
        "allowance": "500",
        "used": "7",
        "remaining": "493",
        "percent_used": "1.4",
        "held": "0",
        "balance": "493",
        "breakdown": [
            {
                "category": "ai_usage",
                "credits": "4",
                "tiers": [
                    {
                        "tier": "standard",
                        "credits": "4",
                        "models": [{"model": "gpt-4o", "credits": "4"}],
                    }
                ],
            },
            {"category": "compute", "credits": "3", "tiers": []},
        ],
        # April 6 - 12 used 7: one a day, 493 days to go: not before May 10
        "forecast": {"burn_rate_per_day": "1", "runs_out_on": None},
    }


def summary_at(api: Api, project: Callable[[], None], path: str, moment: datetime) -> Json:
    project()
    with frozen_clock(moment):
        return dict(ok(api("GET", f"{path}/usage/summary")))


@pytest.mark.usefixtures("fresh_table")
def test_summary_window_held_credits_and_uncategorized_usage(
    api: Api, project_ledger: Callable[[], None]
) -> None:
    w = "/v1/wallets/s1"
    with frozen_clock(datetime(2026, 3, 1, tzinfo=UTC)) as t:
        ok(api("PUT", w, {"plan": "starter"}), 201)  # period March 1 - April 1
        t.set(datetime(2026, 3, 13, 23, 59, 59, tzinfo=UTC))  # a second before the window
        charge(api, w, "bulk", credits="100")
        t.set(datetime(2026, 3, 14, tzinfo=UTC))  # the window's first second
        charge(api, w, "bulk", "ana", credits="7")
        t.set(datetime(2026, 3, 20, 11, 0, tzinfo=UTC))
        charge(api, w, "render", usage=[unit("image_standard", 1), unit("compute_minute", 3)])
        t.set(datetime(2026, 3, 20, 11, 30, tzinfo=UTC))
        reserve(api, w, "render", "5")  # still open
    got = summary_at(api, project_ledger, w, datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    assert got == {
        "wallet_id": "s1",
        "plan": "starter",
        "period": {"start": "2026-03-01T00:00:00.000Z", "end": "2026-04-01T00:00:00.000Z"},
        "renews_at": "2026-04-01T00:00:00.000Z",
        "allowance": "500",
        "used": "114",
        "remaining": "381",  # 386 less the open hold
        "percent_used": "22.8",
        "held": "5",
        "balance": "386",
        "breakdown": [
            {"category": "uncategorized", "credits": "107", "tiers": []},
            {"category": "images", "credits": "4", "tiers": []},
            {"category": "compute", "credits": "3", "tiers": []},
        ],
        # March 14 - 20: 7 + 7 (the 100 of March 13 is outside): 2 a day, 190 days to go
        "forecast": {"burn_rate_per_day": "2", "runs_out_on": None},
    }


@pytest.mark.usefixtures("fresh_table")
def test_summary_of_a_wallet_that_used_nothing(
    api: Api, project_ledger: Callable[[], None]
) -> None:
    with frozen_clock(datetime(2026, 3, 1, tzinfo=UTC)):
        ok(api("PUT", "/v1/wallets/idle", {"plan": "free"}), 201)
        ok(api("PUT", "/v1/wallets/trial", {"plan": "trial"}), 201)
    got = summary_at(api, project_ledger, "/v1/wallets/idle", datetime(2026, 3, 9, tzinfo=UTC))
    assert got["used"] == "0"
    assert got["percent_used"] == "0.0"
    assert got["breakdown"] == []
    assert got["forecast"] == {"burn_rate_per_day": "0", "runs_out_on": None}
    # the trial plan has no allowance (only a welcome bonus): no percentage
    trial = summary_at(api, project_ledger, "/v1/wallets/trial", datetime(2026, 3, 9, tzinfo=UTC))
    assert (trial["allowance"], trial["percent_used"], trial["balance"]) == ("0", None, "1000")


@pytest.mark.usefixtures("fresh_table")
def test_summary_runs_out_today_when_nothing_is_left(
    api: Api, project_ledger: Callable[[], None]
) -> None:
    w = "/v1/wallets/f1"
    with frozen_clock(datetime(2026, 3, 1, tzinfo=UTC)) as t:
        ok(api("PUT", w, {"plan": "free"}), 201)
        t.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        charge(api, w, "chat", credits="50")
    got = summary_at(api, project_ledger, w, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    assert (got["used"], got["remaining"], got["percent_used"]) == ("50", "0", "100.0")
    assert got["forecast"] == {"burn_rate_per_day": "7.142857", "runs_out_on": "2026-03-02"}


@pytest.mark.usefixtures("fresh_table")
def test_summary_forecasts_the_day_credits_run_out_before_the_renewal(
    api: Api, project_ledger: Callable[[], None]
) -> None:
    w = "/v1/wallets/f2"
    with frozen_clock(datetime(2026, 3, 1, tzinfo=UTC)) as t:
        ok(api("PUT", w, {"plan": "free"}), 201)  # 50 credits, renews April 1
        t.set(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
        charge(api, w, "chat", credits="20")
        t.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        charge(api, w, "chat", credits="15")
    got = summary_at(api, project_ledger, w, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    # 35 in the window: 5 a day; 15 left last 3 days from March 2, 12:00
    assert got["forecast"] == {"burn_rate_per_day": "5", "runs_out_on": "2026-03-05"}


@pytest.mark.usefixtures("fresh_table")
def test_summary_with_a_tiny_burn_rate_lasts_past_the_renewal(
    api: Api, project_ledger: Callable[[], None]
) -> None:
    w = "/v1/wallets/f3"
    with frozen_clock(datetime(2026, 3, 1, tzinfo=UTC)) as t:
        ok(api("PUT", w, {"plan": "free"}), 201)
        t.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        charge(api, w, "chat", credits="0.0001")
    project_ledger()
    with frozen_clock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC)):
        got = ok(api("GET", f"{w}/usage/summary"))
    # 49.9999 left at 0.000014 a day: some 3.6 million days, far past the renewal (and past
    # the last date a datetime holds)
    assert got["forecast"] == {"burn_rate_per_day": "0.000014", "runs_out_on": None}


def test_summary_of_an_unknown_wallet_is_404(api: Api, world: Json, now: FakeClock) -> None:
    problem(api("GET", "/v1/wallets/nobody/usage/summary"), 404, "wallet-not-found")


# -- series ---------------------------------------------------------------------------------


def test_day_series_is_zero_filled_and_splits_days_at_utc_midnight(
    api: Api, world: Json, now: FakeClock
) -> None:
    body = series(api, A, "from=2026-03-09&to=2026-03-12")
    assert body == {
        "wallet_id": "acme-main",
        "granularity": "day",
        "from": "2026-03-09",
        "to": "2026-03-12",
        "group_by": None,
        "total": "44.1",
        "points": [
            {"date": "2026-03-09", "credits": "0", "actions": 0, "returned": 0, "groups": None},
            # 0.6 + 20 + 6 (the last at 23:59:59)
            {"date": "2026-03-10", "credits": "26.6", "actions": 3, "returned": 0, "groups": None},
            # 2.5 (at 00:00:00) + 12 + 3; the release and the expired hold returned
            {"date": "2026-03-11", "credits": "17.5", "actions": 3, "returned": 2, "groups": None},
            {"date": "2026-03-12", "credits": "0", "actions": 0, "returned": 0, "groups": None},
        ],
    }
    # across the month's end: March 31 23:59:59 and April 1 00:00:00
    body = series(api, A, "from=2026-03-31&to=2026-04-01")
    assert points(body) == {"2026-03-31": ("9", 1, 0), "2026-04-01": ("2", 1, 0)}


DAY_GROUPS = {
    "category": {
        "2026-03-10": [("images", "20"), ("ai_usage", "6.6")],
        "2026-03-11": [("ai_usage", "10"), (None, "5.5"), ("tasks", "1"), ("tool_calls", "1")],
    },
    "tier": {
        "2026-03-10": [(None, "20"), ("standard", "6"), ("fast", "0.6")],
        "2026-03-11": [("advanced", "10"), (None, "7.5")],
    },
    "model": {
        "2026-03-10": [(None, "20"), ("claude-sonnet", "6"), ("gpt-4o-mini", "0.6")],
        "2026-03-11": [("o3", "10"), (None, "7.5")],
    },
    "feature": {
        "2026-03-10": [("images", "20"), ("chat", "6.6")],
        "2026-03-11": [("agent", "14.5"), ("chat", "3")],
    },
    "member": {
        "2026-03-10": [("bob", "20"), ("ana", "6.6")],
        "2026-03-11": [("bob", "12"), ("ana", "3"), (None, "2.5")],
    },
}


@pytest.mark.parametrize("group_by", sorted(DAY_GROUPS))
def test_day_series_by_group(api: Api, world: Json, now: FakeClock, group_by: str) -> None:
    body = series(api, A, f"from=2026-03-09&to=2026-03-12&group_by={group_by}")
    assert body["group_by"] == group_by
    assert grouped(body) == DAY_GROUPS[group_by]
    # a day without usage has no groups (an empty list, not null)
    assert [p["groups"] for p in body["points"] if p["date"] in ("2026-03-09", "2026-03-12")] == [
        [],
        [],
    ]


MONTH_GROUPS = {
    "category": {
        "2026-03": [
            ("images", "20"),
            ("ai_usage", "16.6"),
            ("voice", "9"),
            (None, "5.5"),
            ("tasks", "1"),
            ("tool_calls", "1"),
        ],
        "2026-04": [("ai_usage", "6"), ("compute", "3")],
    },
    "tier": {
        "2026-03": [(None, "36.5"), ("advanced", "10"), ("standard", "6"), ("fast", "0.6")],
        "2026-04": [("standard", "5"), (None, "3"), ("advanced", "1")],
    },
    "model": {
        "2026-03": [(None, "36.5"), ("o3", "10"), ("claude-sonnet", "6"), ("gpt-4o-mini", "0.6")],
        "2026-04": [("gpt-4o", "4"), (None, "3"), ("claude-opus", "1"), ("gemini-pro", "1")],
    },
    "feature": {
        "2026-03": [("images", "20"), ("agent", "14.5"), ("chat", "9.6"), ("voice", "9")],
        "2026-04": [("agent", "7"), ("chat", "2")],
    },
    "member": {
        "2026-03": [("bob", "32"), ("ana", "9.6"), ("cy", "9"), (None, "2.5")],
        "2026-04": [(None, "7"), ("ana", "2")],
    },
}


@pytest.mark.parametrize("group_by", sorted(MONTH_GROUPS))
def test_month_series_by_group(api: Api, world: Json, now: FakeClock, group_by: str) -> None:
    body = series(api, A, f"granularity=month&from=2026-02&to=2026-04&group_by={group_by}")
    assert (body["granularity"], body["from"], body["to"]) == ("month", "2026-02", "2026-04")
    assert body["total"] == "62.1"
    # March ends at 23:59:59 on the 31st; April holds the commit after the reset
    assert points(body) == {"2026-03": ("53.1", 7, 2), "2026-04": ("9", 2, 0)}
    assert body["points"][0] == {
        "date": "2026-02",
        "credits": "0",
        "actions": 0,
        "returned": 0,
        "groups": [],
    }
    assert grouped(body) == MONTH_GROUPS[group_by]


def test_series_groups_have_no_null_when_all_is_attributed(
    api: Api, world: Json, now: FakeClock
) -> None:
    # acme-lab on April 2: 10 free web searches and 2 credits of gemini-flash
    body = series(api, B, "from=2026-04-02&to=2026-04-02&group_by=model")
    assert grouped(body) == {"2026-04-02": [("gemini-flash", "2")]}
    body = series(api, B, "from=2026-04-02&to=2026-04-02&group_by=member")
    assert grouped(body) == {"2026-04-02": [("dee", "2")]}


def test_series_default_ranges(api: Api, world: Json, now: FakeClock) -> None:
    days = series(api, A)
    assert (days["granularity"], days["from"], days["to"]) == ("day", "2026-03-14", "2026-04-12")
    assert [p["date"] for p in days["points"]] == [
        (date(2026, 3, 14) + timedelta(days=i)).isoformat() for i in range(30)
    ]
    assert days["total"] == "18"
    assert points(days) == {
        "2026-03-31": ("9", 1, 0),
        "2026-04-01": ("2", 1, 0),
        "2026-04-10": ("7", 1, 0),
    }
    months = series(api, A, "granularity=month")
    assert (months["from"], months["to"]) == ("2025-05", "2026-04")
    assert [p["date"] for p in months["points"]] == [
        *(f"2025-{m:02d}" for m in range(5, 13)),
        *(f"2026-{m:02d}" for m in range(1, 5)),
    ]
    assert months["total"] == "62.1"
    # only one end given: the other is 29 days (11 months) from it, or today (this month)
    only_to = series(api, A, "to=2026-03-11")
    assert (only_to["from"], only_to["to"], only_to["total"]) == (
        "2026-02-10",
        "2026-03-11",
        "44.1",
    )
    only_from = series(api, A, "from=2026-04-01")
    assert (only_from["from"], only_from["to"], len(only_from["points"])) == (
        "2026-04-01",
        "2026-04-12",
        12,
    )
    assert series(api, A, "granularity=month&to=2026-03")["from"] == "2025-04"
    assert series(api, A, "granularity=month&from=2026-01")["to"] == "2026-04"


def test_series_maxima(api: Api, world: Json, now: FakeClock) -> None:
    assert len(series(api, A, "from=2026-01-13&to=2026-04-12")["points"]) == 90
    assert len(series(api, A, "from=2026-01-13")["points"]) == 90
    for query in ("from=2026-01-12&to=2026-04-12", "from=2026-01-12"):
        refusal = problem(api("GET", f"{A}/usage", query=query), 422, "invalid-request")
        assert [e["field"] for e in refusal["errors"]] == ["from"]
    months = series(api, A, "granularity=month&from=2024-05&to=2026-04")
    assert (len(months["points"]), months["total"]) == (24, "62.1")
    for query in ("granularity=month&from=2024-04&to=2026-04", "granularity=month&from=2024-04"):
        refusal = problem(api("GET", f"{A}/usage", query=query), 422, "invalid-request")
        assert [e["field"] for e in refusal["errors"]] == ["from"]
    # from after to
    for query in (
        "from=2026-04-02&to=2026-04-01",
        "from=2026-04-13",  # after today
        "granularity=month&from=2026-04&to=2026-03",
    ):
        refusal = problem(api("GET", f"{A}/usage", query=query), 422, "invalid-request")
        assert [e["field"] for e in refusal["errors"]] == ["from"]
    # one day, one month
    assert points(series(api, A, "from=2026-04-10&to=2026-04-10")) == {"2026-04-10": ("7", 1, 0)}


def test_series_of_a_wallet_without_usage_and_of_none(
    api: Api, world: Json, now: FakeClock
) -> None:
    solo = functools.partial(api, as_=SOLO)
    body = series(solo, "/v1/wallets/solo", "from=2026-04-01&to=2026-04-03&group_by=feature")
    assert [(p["date"], p["credits"], p["groups"]) for p in body["points"]] == [
        ("2026-04-01", "0", []),
        ("2026-04-02", "0", []),
        ("2026-04-03", "0", []),
    ]
    assert body["total"] == "0"
    problem(api("GET", "/v1/wallets/nobody/usage"), 404, "wallet-not-found")
    problem(
        api("GET", "/v1/wallets/nobody/usage", query="granularity=month"), 404, "wallet-not-found"
    )


# -- the activity log -----------------------------------------------------------------------


def test_activity_log_is_the_ledger_with_a_running_balance(
    api: Api, world: Json, now: FakeClock, seq_ids: dict[int, str]
) -> None:
    items = log(api, A, "limit=100")["items"]
    columns = ("type", "status", "credits", "balance_after", "feature", "member_id", "held")
    assert [tuple(e[k] for k in columns) for e in items] == list(LEDGER.values())
    assert [e["at"] for e in items] == list(AT.values())
    # released and expired reservations are refunded; nothing else is
    assert [e["refunded"] for e in items] == [s in (9, 8) for s in LEDGER]
    # balance_after is the running sum of credits, oldest first
    running = Decimal(0)
    for entry in reversed(items):
        running += Decimal(entry["credits"])
        assert Decimal(entry["balance_after"]) == running
    assert {e["reason"] for e in items} == {None, "=SUM(A1)"}
    assert [e["source"] for e in items if e["source"]] == ["monthly"] * 4


def test_activity_log_lines_and_tokens(
    api: Api, world: Json, now: FakeClock, seq_ids: dict[int, str]
) -> None:
    items = {e["transaction_id"]: e for e in log(api, A, "limit=100")["items"]}
    agent = items[seq_ids[6]]

    def line(cat: str, op: str, model: str | None, tier: str | None, u: str, *p: str) -> Json:
        price, quantity, cost = p
        return {
            "category": cat,
            "operation": op,
            "model": model,
            "tier": tier,
            "unit": u,
            "unit_price": price,
            "quantity": quantity,
            "cost": cost,
        }

    k = "1000 tokens"
    assert agent["lines"] == [
        line("ai_usage", "input_tokens", "o3", "advanced", k, "0.2", "10000", "2"),
        line("ai_usage", "output_tokens", "o3", "advanced", k, "0.8", "5000", "4"),
        line("ai_usage", "reasoning_tokens", "o3", "advanced", k, "0.8", "5000", "4"),
        line("tool_calls", "app_call", None, None, "call", "0.05", "20", "1"),
        line("tasks", "task_completed", None, None, "task", "0.25", "4", "1"),
    ]
    assert agent["tokens"] == {"input": "10000", "output": "5000", "reasoning": "5000"}
    assert items[seq_ids[3]]["lines"] == [
        line("images", "image_hd", None, None, "image", "8", "2", "16"),
        line("images", "image_standard", None, None, "image", "4", "1", "4"),
    ]
    assert items[seq_ids[3]]["tokens"] is None  # no token meter
    assert items[seq_ids[12]]["tokens"] == {"input": "5000", "output": "2500", "reasoning": "0"}
    # no lines: a credits-only charge, a commit without a cost, a release, an expiry
    for seq in (5, 7, 8, 9, 10, 1):
        assert (items[seq_ids[seq]]["lines"], items[seq_ids[seq]]["tokens"]) == ([], None)
    # every entry's lines add up to its credits
    for entry in items.values():
        if entry["lines"]:
            assert sum(Decimal(x["cost"]) for x in entry["lines"]) == -Decimal(entry["credits"])
            for x in entry["lines"]:
                price = Decimal(x["unit_price"]) * Decimal(x["quantity"])
                if x["unit"] == k:
                    price /= 1000
                assert Decimal(x["cost"]) == price


FILTERS = {
    "type=charge": [12, 11, 5, 4, 3, 2],
    "type=reservation": [15, 9, 8, 7, 6],
    "type=expire": [16, 13],
    "type=grant": [14, 1],
    "type=adjustment": [10],
    "type=transfer": [],
    "member_id=ana": [12, 7, 4, 2],
    "member_id=cy": [11, 9],
    "member_id=bob": [6, 3],
    "member_id=nobody": [],
    "feature=chat": [12, 8, 7, 4, 2],
    "feature=agent": [15, 6, 5],
    "feature=voice": [11, 9],
    "day=2026-03-10": [4, 3, 2, 1],
    "day=2026-03-11": [10, 9, 8, 7, 6, 5],
    "day=2026-03-31": [11],
    "day=2026-04-01": [12],
    "day=2026-04-10": [16, 15, 14, 13],
    "day=2026-03-15": [],  # a day without activity
    "day=2026-03-09": [],  # before the wallet
    # combined
    "day=2026-03-11&feature=chat": [8, 7],
    "day=2026-03-11&type=reservation&member_id=bob": [6],
    "type=charge&feature=chat&member_id=ana": [12, 4, 2],
    "day=2026-03-10&member_id=ana": [4, 2],
    "day=2026-04-10&type=reservation": [15],
    "type=reservation&feature=voice": [9],
    "day=2026-03-11&type=charge&member_id=ana": [],
    "day=2026-03-12&type=charge": [],
    "type=grant&feature=chat": [],
}


@pytest.mark.parametrize("query", list(FILTERS))
def test_activity_log_filters(
    api: Api, world: Json, now: FakeClock, seq_ids: dict[int, str], query: str
) -> None:
    body = log(api, A, query)
    assert ids(body["items"]) == [seq_ids[s] for s in FILTERS[query]]
    assert body["next_cursor"] is None
    for entry in body["items"]:
        for part in query.split("&"):
            name, value = part.split("=")
            if name == "day":
                assert entry["at"].startswith(value)
            else:
                assert entry[name] == value


PAGED = {
    "": list(LEDGER),
    "feature=chat": FILTERS["feature=chat"],
    "day=2026-03-11": FILTERS["day=2026-03-11"],
    "type=charge&member_id=ana": [12, 4, 2],
    "type=reservation": FILTERS["type=reservation"],
    "day=2026-04-10&type=expire": [16, 13],
}


@pytest.mark.parametrize("query", list(PAGED))
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_activity_log_pages_until_exhausted(
    api: Api, world: Json, now: FakeClock, seq_ids: dict[int, str], query: str, limit: int
) -> None:
    pages = all_pages(api, A, f"limit={limit}" + (f"&{query}" if query else ""))
    assert all(len(page) <= limit for page in pages)
    assert all(pages[:-1]), "only the last page may be empty"
    got = [i for page in pages for i in ids(page)]
    # nothing missed, nothing twice, newest first
    assert got == [seq_ids[s] for s in PAGED[query]]


def cursor_of(seq: int) -> str:
    return base64.urlsafe_b64encode(f"T#{seq:012d}".encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "seq", "expected"),
    [
        # a cursor of the unfiltered log (entry 9) with a day filter: that day, below it
        ("day=2026-03-11", 9, [8, 7, 6, 5]),
        ("day=2026-03-10", 9, [4, 3, 2, 1]),  # the day lies wholly below the cursor
        ("day=2026-03-11", 3, []),  # ... or wholly above it
        ("day=2026-03-11", 5, []),  # the cursor is the day's first entry
        ("day=2026-03-11", 10, [9, 8, 7, 6, 5]),  # ... or its last
        ("day=2026-04-10&type=expire", 14, [13]),
        ("feature=chat", 12, [8, 7, 4, 2]),
        ("", 2, [1]),
        ("", 1, []),
    ],
)
def test_activity_log_cursor_from_another_page(
    api: Api,
    world: Json,
    now: FakeClock,
    seq_ids: dict[int, str],
    query: str,
    seq: int,
    expected: list[int],
) -> None:
    body = log(api, A, f"cursor={cursor_of(seq)}" + (f"&{query}" if query else ""))
    assert ids(body["items"]) == [seq_ids[s] for s in expected]
    assert body["next_cursor"] is None


def test_activity_log_of_an_unknown_wallet_is_404(api: Api, world: Json, now: FakeClock) -> None:
    for query in ("", "day=2026-03-11", "type=charge", "feature=chat&member_id=ana"):
        problem(api("GET", "/v1/wallets/nobody/transactions", query=query), 404, "wallet-not-found")
    # a wallet with no activity that day is not unknown
    solo = functools.partial(api, as_=SOLO)
    assert log(solo, "/v1/wallets/solo", "day=2026-04-01") == {"items": [], "next_cursor": None}


# -- the CSV export -------------------------------------------------------------------------

CSV_HEADER = [
    "at",
    "transaction_id",
    "type",
    "status",
    "refunded",
    "feature",
    "member_id",
    "credits",
    "balance_after",
    "held",
    "lines",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "source",
    "reason",
    "billing",
]

Csv = Callable[..., tuple[int, dict[str, str], str]]


@pytest.fixture(scope="module")
def get_csv(metering_app: Any) -> Csv:
    """``get_csv(path, query="") -> (status, headers, text)`` through the metering handler (the
    ``api`` fixture would decode the body as JSON)."""

    def call(path: str, query: str = "") -> tuple[int, dict[str, str], str]:
        event = http_event("GET", path, None, {}, query, claims=ACME)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "No application metrics to publish")
            response = metering_app.handler(event, FakeContext())
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return response["statusCode"], headers, body

    return call


def csv_rows(text: str) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == CSV_HEADER
    return [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]


def csv_ok(get_csv: Csv, path: str, query: str = "") -> tuple[dict[str, str], list[Json]]:
    status, headers, text = get_csv(path, query)
    assert status == 200, text
    assert headers["content-type"] == "text/csv; charset=utf-8"
    return headers, csv_rows(text)


def as_row(entry: Json) -> dict[str, str]:
    """What a JSON activity entry reads as in the CSV (all but ``lines``)."""
    tokens = entry["tokens"] or {}
    reason = entry["reason"]
    return {
        "at": entry["at"],
        "transaction_id": entry["transaction_id"],
        "type": entry["type"],
        "status": entry["status"],
        "refunded": "true" if entry["refunded"] else "false",
        "feature": entry["feature"] or "",
        "member_id": entry["member_id"] or "",
        "credits": entry["credits"],
        "balance_after": entry["balance_after"],
        "held": entry["held"] or "",
        "input_tokens": tokens.get("input", ""),
        "output_tokens": tokens.get("output", ""),
        "reasoning_tokens": tokens.get("reasoning", ""),
        "source": entry["source"] or "",
        "reason": "'" + reason if reason and reason[0] in "=+-@" else (reason or ""),
        "billing": entry["billing"],
    }


def test_csv_has_the_json_log_rows(
    api: Api, get_csv: Csv, world: Json, now: FakeClock, seq_ids: dict[int, str]
) -> None:
    headers, rows = csv_ok(get_csv, f"{A}/transactions.csv")
    assert headers["content-disposition"] == 'attachment; filename="acme-main-transactions.csv"'
    assert "link" not in headers and "x-next-cursor" not in headers
    items = log(api, A, "limit=100")["items"]
    assert len(rows) == len(items) == 16
    assert [{k: v for k, v in r.items() if k != "lines"} for r in rows] == [
        as_row(e) for e in items
    ]
    by_id = {r["transaction_id"]: r for r in rows}
    assert by_id[seq_ids[6]]["lines"] == (
        "input_tokens o3 10000 x 0.2 = 2; output_tokens o3 5000 x 0.8 = 4; "
        "reasoning_tokens o3 5000 x 0.8 = 4; app_call 20 x 0.05 = 1; task_completed 4 x 0.25 = 1"
    )
    assert by_id[seq_ids[11]]["lines"] == "voice_minute 2 x 3 = 6; meeting_minute 2 x 1.5 = 3"
    assert by_id[seq_ids[5]]["lines"] == ""
    # the adjustment's reason cannot run as a formula; negative amounts stay numbers
    assert by_id[seq_ids[10]]["reason"] == "'=SUM(A1)"
    assert by_id[seq_ids[10]]["credits"] == "-1"
    assert (by_id[seq_ids[9]]["refunded"], by_id[seq_ids[9]]["held"]) == ("true", "10")


@pytest.mark.parametrize("query", [*[q for q in FILTERS if FILTERS[q]][:12], "day=2026-03-15"])
def test_csv_filters_give_the_json_rows(
    api: Api, get_csv: Csv, world: Json, now: FakeClock, query: str
) -> None:
    _, rows = csv_ok(get_csv, f"{A}/transactions.csv", query)
    items = log(api, A, f"limit=100&{query}")["items"]
    assert [r["transaction_id"] for r in rows] == ids(items)


@pytest.mark.parametrize("query", ["limit=3", "limit=2&feature=chat", "limit=1&day=2026-03-11"])
def test_csv_pages_follow_the_link_header(
    api: Api, get_csv: Csv, world: Json, now: FakeClock, query: str
) -> None:
    limit = int(dict(parse_qsl(query))["limit"])
    filters = "&".join(p for p in query.split("&") if not p.startswith("limit="))
    expected = ids(log(api, A, "limit=100" + (f"&{filters}" if filters else ""))["items"])
    path, q = f"{A}/transactions.csv", query
    got: list[str] = []
    for _ in range(40):
        headers, rows = csv_ok(get_csv, path, q)
        assert len(rows) <= limit
        got += [r["transaction_id"] for r in rows]
        if "link" not in headers:
            assert "x-next-cursor" not in headers
            break
        target, rel = headers["link"].split(";")
        assert rel.strip() == 'rel="next"'
        # relative to the request's own URL (whatever stage or base path it went through)
        assert target.startswith("<?") and target.endswith(">")
        url = urlsplit(urljoin(f"{path}?{q}", target[1:-1]))
        assert url.path == f"{A}/transactions.csv"
        params = dict(parse_qsl(url.query))
        assert params["cursor"] == headers["x-next-cursor"]
        # the same filters and limit, from the cursor
        assert {k: v for k, v in params.items() if k != "cursor"} == dict(parse_qsl(query))
        path, q = url.path, url.query
    else:
        pytest.fail("the CSV pages do not end")
    assert got == expected


def test_csv_takes_up_to_1000_rows_a_page(get_csv: Csv, world: Json, now: FakeClock) -> None:
    for query in ("limit=1000", "limit=101", ""):
        headers, rows = csv_ok(get_csv, f"{A}/transactions.csv", query)
        assert len(rows) == 16 and "link" not in headers


def test_csv_of_an_unknown_wallet_is_404(api: Api, world: Json, now: FakeClock) -> None:
    problem(api("GET", "/v1/wallets/nobody/transactions.csv"), 404, "wallet-not-found")


@pytest.mark.usefixtures("fresh_table")
def test_csv_cells_never_become_formulas(
    api: Api, get_csv: Csv, project_ledger: Callable[[], None]
) -> None:
    w = "/v1/wallets/x1"
    # Features and member ids must start with a letter or a digit: a formula cannot get in.
    with frozen_clock(datetime(2026, 5, 1, 9, 0, tzinfo=UTC)) as t:
        ok(api("PUT", w, {"plan": "free"}), 201)
        for bad in ("=1+1", "+1", "-1", "@SUM(A1)"):
            for field in ("feature", "member_id"):
                body = {"feature": "chat", "credits": "1", field: bad}
                problem(api("POST", f"{w}/charges", body), 422, "invalid-request")
        # Free text can: an adjustment's reason.
        reasons = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", "-5", "fine = ok"]
        for reason in reasons:
            t.advance(60)
            ok(api("POST", f"{w}/adjustments", {"credits": "-1", "reason": reason}), 201)
    project_ledger()
    with frozen_clock(datetime(2026, 5, 2, tzinfo=UTC)):
        _, rows = csv_ok(get_csv, f"{w}/transactions.csv", "type=adjustment")
        items = log(api, w, "type=adjustment")["items"]
    assert [i["reason"] for i in items] == reasons[::-1]
    assert [r["reason"] for r in rows] == [
        "fine = ok",
        "-5",  # a number is not a formula
        "'\r=1+1",
        "'\t=1+1",
        "'@SUM(A1)",
        "'-1+1",
        "'+1+1",
        "'=1+1",
    ]
    assert {r["credits"] for r in rows} == {"-1"}
    assert [r["balance_after"] for r in rows] == [str(50 - n) for n in range(8, 0, -1)]


# -- organisations --------------------------------------------------------------------------


def test_org_usage_by_month_wallet_and_member(api: Api, world: Json, now: FakeClock) -> None:
    body = ok(api("GET", "/v1/orgs/acme/usage", query="from=2026-03&to=2026-04"))
    assert body == {
        "org_id": "acme",
        "from": "2026-03",
        "to": "2026-04",
        "credits": "107.1",
        "actions": 12,
        "months": [
            {"month": "2026-03", "credits": "96.1"},  # 53.1 + 43
            {"month": "2026-04", "credits": "11"},  # 9 + 2
        ],
        # solo and globex-1 (other organisations) are not in it
        "wallets": [
            {"wallet_id": "acme-main", "credits": "62.1", "actions": 9},
            {"wallet_id": "acme-lab", "credits": "45", "actions": 3},
        ],
        "members": [
            {"wallet_id": "acme-lab", "member_id": "eve", "credits": "40"},
            {"wallet_id": "acme-main", "member_id": "bob", "credits": "32"},
            {"wallet_id": "acme-main", "member_id": "ana", "credits": "11.6"},
            {"wallet_id": "acme-main", "member_id": None, "credits": "9.5"},
            {"wallet_id": "acme-main", "member_id": "cy", "credits": "9"},
            {"wallet_id": "acme-lab", "member_id": "ana", "credits": "3"},
            {"wallet_id": "acme-lab", "member_id": "dee", "credits": "2"},
        ],
        # ana over both wallets: 11.6 + 3
        "top_consumers": [
            {"member_id": "eve", "credits": "40"},
            {"member_id": "bob", "credits": "32"},
            {"member_id": "ana", "credits": "14.6"},
            {"member_id": "cy", "credits": "9"},
            {"member_id": "dee", "credits": "2"},
        ],
    }


def test_org_usage_defaults_to_this_month(api: Api, world: Json, now: FakeClock) -> None:
    body = ok(api("GET", "/v1/orgs/acme/usage"))
    assert body == {
        "org_id": "acme",
        "from": "2026-04",
        "to": "2026-04",
        "credits": "11",
        "actions": 3,
        "months": [{"month": "2026-04", "credits": "11"}],
        "wallets": [
            {"wallet_id": "acme-main", "credits": "9", "actions": 2},
            {"wallet_id": "acme-lab", "credits": "2", "actions": 1},
        ],
        "members": [
            {"wallet_id": "acme-main", "member_id": None, "credits": "7"},
            {"wallet_id": "acme-lab", "member_id": "dee", "credits": "2"},
            {"wallet_id": "acme-main", "member_id": "ana", "credits": "2"},
        ],
        "top_consumers": [
            {"member_id": "ana", "credits": "2"},
            {"member_id": "dee", "credits": "2"},
        ],
    }
    only_to = ok(api("GET", "/v1/orgs/acme/usage", query="to=2026-03"))
    assert (only_to["from"], only_to["to"], only_to["credits"]) == ("2026-03", "2026-03", "96.1")
    only_from = ok(api("GET", "/v1/orgs/acme/usage", query="from=2026-02"))
    assert (only_from["from"], only_from["to"], only_from["credits"]) == (
        "2026-02",
        "2026-04",
        "107.1",
    )
    assert [m["credits"] for m in only_from["months"]] == ["0", "96.1", "11"]


def test_org_usage_other_orgs_ranges_and_unknown(api: Api, world: Json, now: FakeClock) -> None:
    as_globex = functools.partial(api, as_=GLOBEX)
    globex = ok(as_globex("GET", "/v1/orgs/globex/usage", query="from=2026-03&to=2026-03"))
    assert (globex["credits"], globex["actions"], globex["wallets"], globex["top_consumers"]) == (
        "1.5",
        1,
        [{"wallet_id": "globex-1", "credits": "1.5", "actions": 1}],
        [{"member_id": "zed", "credits": "1.5"}],
    )
    # a wallet with nothing in the range is listed with zero
    quiet = ok(as_globex("GET", "/v1/orgs/globex/usage", query="from=2026-01&to=2026-02"))
    assert quiet["wallets"] == [{"wallet_id": "globex-1", "credits": "0", "actions": 0}]
    assert (quiet["members"], quiet["top_consumers"]) == ([], [])
    twelve = ok(api("GET", "/v1/orgs/acme/usage", query="from=2025-05&to=2026-04"))
    assert (len(twelve["months"]), twelve["credits"]) == (12, "107.1")
    for query in ("from=2025-04&to=2026-04", "from=2026-04&to=2026-03"):
        refusal = problem(api("GET", "/v1/orgs/acme/usage", query=query), 422, "invalid-request")
        assert [e["field"] for e in refusal["errors"]] == ["from"]
    # an organisation with no wallets (asked by its own member: others are refused before)
    nobody = problem(
        api("GET", "/v1/orgs/nobody/usage", as_=org_token("nobody")), 404, "organisation-not-found"
    )
    # another organisation reads exactly as one without wallets
    assert api("GET", "/v1/orgs/nobody/usage")[2] == nobody
    other = problem(api("GET", "/v1/orgs/globex/usage"), 404, "organisation-not-found")
    assert other == {**nobody, "detail": "organisation globex has no wallets"}
    # an organisation id is not a wallet id: a wallet alone is no organisation
    problem(api("GET", "/v1/orgs/solo/usage", as_=org_token("solo")), 404, "organisation-not-found")


def test_a_wallet_does_not_move_to_another_org(
    api: Api, world: Json, table_items: Callable[..., list[Json]]
) -> None:
    # within acme-lab's period (a PUT after its end would run the reset first)
    with frozen_clock(datetime(2026, 4, 5, 12, 0, tzinfo=UTC)):
        before = table_items()
        for org in ("globex", "acme2"):
            body = {"plan": "pro", "org_id": org}
            # acme may only name itself ...
            refusal = problem(api("PUT", B, body), 422, "invalid-request")
            assert [e["field"] for e in refusal["errors"]] == ["org_id"]
            # ... and for anyone else acme's wallet does not exist
            problem(api("PUT", B, body, as_=org_token(org)), 404, "wallet-not-found")
            problem(api("PUT", B, {"plan": "pro"}, as_=org_token(org)), 404, "wallet-not-found")
        assert table_items() == before
        # the service itself refuses a move (a request that raced the API's check)
        with pytest.raises(Conflict) as refusal:
            Plans().put_wallet("acme-lab", "pro", org_id="globex")
        assert (refusal.value.code, "acme" in refusal.value.detail) == ("organisation-set", True)
        assert table_items() == before
        assert ok(api("GET", B))["org_id"] == "acme"


@pytest.mark.usefixtures("fresh_table")
def test_wallets_join_an_org_at_creation_or_later_once(
    api: Api, table_items: Callable[..., list[Json]], project_ledger: Callable[[], None]
) -> None:
    o1, o2 = (
        functools.partial(api, as_=org_token("o1")),
        functools.partial(api, as_=org_token("o2")),
    )
    with frozen_clock(datetime(2026, 6, 1, 8, 0, tzinfo=UTC)) as t:
        assert ok(o1("PUT", "/v1/wallets/w1", {"plan": "free", "org_id": "o1"}), 201)["org_id"] == (
            "o1"
        )
        # made before organisations were required (the API always puts a wallet in one)
        assert Plans().put_wallet("w2", "free")[1].org_id is None
        # the caller's organisation, named or not
        assert ok(o2("PUT", "/v1/wallets/w3", {"plan": "free"}), 201)["org_id"] == "o2"
        problem(api("GET", "/v1/orgs/o3/usage", as_=org_token("o3")), 404, "organisation-not-found")
        t.advance(60)
        # the org-less w2 is nobody's: only the platform (credits:admin) may adopt it
        before = table_items()
        owner = token("owner", org="o1", scopes=["credits:meter"])
        problem(api("PUT", "/v1/wallets/w2", {"plan": "free"}, as_=owner), 404, "wallet-not-found")
        problem(o1("GET", "/v1/wallets/w2"), 404, "wallet-not-found")
        assert table_items() == before
        # adopted, then again (no change), then without naming it
        assert ok(o1("PUT", "/v1/wallets/w2", {"plan": "free", "org_id": "o1"}))["org_id"] == "o1"
        assert ok(o1("PUT", "/v1/wallets/w2", {"plan": "free", "org_id": "o1"}))["org_id"] == "o1"
        assert ok(o1("PUT", "/v1/wallets/w2", {"plan": "free"}))["org_id"] == "o1"
        before = table_items()
        # another organisation's wallets do not exist for o1 or o2, whatever the body says
        problem(
            o2("PUT", "/v1/wallets/w2", {"plan": "free", "org_id": "o2"}), 404, "wallet-not-found"
        )
        problem(
            o1("PUT", "/v1/wallets/w3", {"plan": "free", "org_id": "o1"}), 404, "wallet-not-found"
        )
        problem(o2("PUT", "/v1/wallets/w1", {"plan": "starter"}), 404, "wallet-not-found")
        # and a body may only name the caller's own
        refusal = problem(
            o1("PUT", "/v1/wallets/w1", {"plan": "starter", "org_id": "o2"}), 422, "invalid-request"
        )
        assert [e["field"] for e in refusal["errors"]] == ["org_id"]
        assert table_items() == before
        assert ok(o1("GET", "/v1/wallets/w1"))["plan"] == "free"
        t.advance(60)
        charge(o1, "/v1/wallets/w1", "chat", "ana", credits="1")
        charge(o1, "/v1/wallets/w2", "chat", "ana", credits="2")
        charge(o2, "/v1/wallets/w3", "chat", "ana", credits="4")
        project_ledger()
        o1_usage = ok(o1("GET", "/v1/orgs/o1/usage"))
        o2_usage = ok(o2("GET", "/v1/orgs/o2/usage"))
    assert (o1_usage["credits"], [w["wallet_id"] for w in o1_usage["wallets"]]) == (
        "3",
        ["w2", "w1"],
    )
    assert o1_usage["top_consumers"] == [{"member_id": "ana", "credits": "3"}]
    assert (o2_usage["credits"], [w["wallet_id"] for w in o2_usage["wallets"]]) == ("4", ["w3"])


@pytest.mark.usefixtures("fresh_table")
def test_org_usage_over_many_wallets_keeps_the_top_ten_members(
    api: Api, project_ledger: Callable[[], None]
) -> None:
    # 9 wallets x 12 months: more rollup keys than one BatchGetItem takes (100)
    api = functools.partial(api, as_=org_token("big"))
    with frozen_clock(datetime(2025, 6, 1, tzinfo=UTC)) as t:
        for n in range(9):
            ok(api("PUT", f"/v1/wallets/m{n}", {"plan": "pro", "org_id": "big"}), 201)
        for n in range(12):  # member u<n> spends n + 1 credits, in month n (June 2025 on)
            t.set(datetime(2025 + (5 + n) // 12, (5 + n) % 12 + 1, 15, tzinfo=UTC))
            charge(api, f"/v1/wallets/m{n % 9}", "chat", f"u{n:02d}", credits=str(n + 1))
    project_ledger()
    with frozen_clock(datetime(2026, 5, 20, tzinfo=UTC)):
        body = ok(api("GET", "/v1/orgs/big/usage", query="from=2025-06&to=2026-05"))
    assert (body["credits"], body["actions"]) == ("78", 12)  # 1 + 2 + ... + 12
    assert [m["credits"] for m in body["months"]] == [str(n + 1) for n in range(12)]
    assert len(body["wallets"]) == 9
    # m0 has u00 and u09 (1 + 10), m1 u01 and u10 (2 + 11), m2 u02 and u11 (3 + 12)
    assert body["wallets"][:3] == [
        {"wallet_id": "m2", "credits": "15", "actions": 2},
        {"wallet_id": "m1", "credits": "13", "actions": 2},
        {"wallet_id": "m0", "credits": "11", "actions": 2},
    ]
    assert len(body["members"]) == 12
    assert body["top_consumers"] == [
        {"member_id": f"u{n:02d}", "credits": str(n + 1)} for n in range(11, 1, -1)
    ]


# -- the rollups: replays add nothing, and they are the fold of the ledger ------------------


def table_rollups(items: list[Json]) -> dict[str, Json]:
    """The rollup items of a partition as ``usage.fold`` shapes them (no key, no kind)."""
    found = {}
    for raw in rollups(items):
        item = from_item(raw)
        found[item["sk"]] = {k: v for k, v in item.items() if k not in ("pk", "sk", "kind")}
    return found


def ledger(items: list[Json]) -> list[Json]:
    return [from_item(i) for i in items if i["sk"]["S"].startswith("T#")]


def assert_rollups_are_the_fold(items: list[Json]) -> None:
    entries = ledger(items)
    assert [int(e["seq"]) for e in entries] == list(range(1, len(entries) + 1))
    assert table_rollups(items) == usage.fold(entries)


def test_world_rollups_are_the_fold_of_the_ledger(
    world: Json, table_items: Callable[..., list[Json]]
) -> None:
    for wallet_id in ("acme-main", "acme-lab", "solo", "globex-1"):
        items = table_items(wallet_id)
        assert rollups(items), wallet_id
        assert_rollups_are_the_fold(items)
    # days, months and periods of acme-main: every day with an entry, usage months and periods
    assert sorted(table_rollups(table_items("acme-main"))) == [
        "U#D#2026-03-10",
        "U#D#2026-03-11",
        "U#D#2026-03-31",
        "U#D#2026-04-01",
        "U#D#2026-04-10",
        "U#M#2026-03",
        "U#M#2026-04",
        f"U#P#{int(datetime(2026, 3, 10, tzinfo=UTC).timestamp()):010d}",
        f"U#P#{int(datetime(2026, 4, 10, tzinfo=UTC).timestamp()):010d}",
    ]


@pytest.mark.usefixtures("fresh_table")
def test_replaying_the_stream_changes_no_rollup(
    api: Api, project_ledger: Callable[[], None], table_items: Callable[..., list[Json]]
) -> None:
    w = "/v1/wallets/r1"
    with frozen_clock(datetime(2026, 1, 31, 23, 0, tzinfo=UTC)) as t:
        ok(api("PUT", w, {"plan": "free"}), 201)  # period January 31 - February 28
        charge(api, w, "chat", "ana", usage=[tok("output_tokens", "claude-haiku", 12500)])
        project_ledger()
        t.set(datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))
        rid = reserve(api, w, "agent", "4", member_id="bob")
        t.set(datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC))
        commit(api, w, rid, {"usage": [unit("task_completed", 6)]})
        release(api, w, reserve(api, w, "agent", "2"))
        reserve(api, w, "voice", "3", expires_in_seconds=1)
        t.advance(120)
        assert sweep() == 1
        charge(api, w, "chat", credits="0.000001")
        t.set(datetime(2026, 2, 28, 0, 1, tzinfo=UTC))
        assert Periods().advance("r1").reset
        charge(api, w, "chat", "ana", credits="1")
        project_ledger()
        first = rollups(table_items("r1"))
        entries = [i for i in table_items("r1") if i["sk"]["S"].startswith("T#")]
        project_ledger()
        project_ledger()
    assert rollups(table_items("r1")) == first  # byte for byte
    assert [i for i in table_items("r1") if i["sk"]["S"].startswith("T#")] == entries
    assert_rollups_are_the_fold(table_items("r1"))
    month = table_rollups(table_items("r1"))["U#M#2026-02"]
    # 1.5 + 0.000001 + 1 credits, 3 actions, a release and an expiry
    assert (month["t"], month["n"], month["r"]) == (Decimal("2.500001"), 3, 2)


# The operations of a random workload (one wallet, on the pro plan: it never runs dry).
OPERATIONS = (
    "charge-credits",
    "charge-usage",
    "commit-usage",
    "commit-credits",
    "commit-held",
    "release",
    "expire",
    "adjust",
    "reset",
)
MODELS = ("gpt-4o-mini", "claude-sonnet", "o3")
GAPS = (1, 3599, 3600, 86399, 86400, 6 * 86400, 19 * 86400)


def workload_usage(n: int) -> list[Json]:
    lines = [
        tok(("input_tokens", "output_tokens", "reasoning_tokens")[n % 3], MODELS[n % 3], n * 777)
    ]
    if n % 2:
        lines.append(unit(("app_call", "web_search", "image_standard")[n % 3], n))
    return lines


def run_operation(api: Api, t: FakeClock, op: str, n: int) -> None:
    w = "/v1/wallets/p1"
    member = (None, "ana", "bob")[n % 3]
    feature = ("chat", "agent")[n % 2]
    extra = {} if member is None else {"member_id": member}
    credits = f"{n}.{n:02d}"
    if op == "charge-credits":
        charge(api, w, feature, member, credits=credits)
    elif op == "charge-usage":
        charge(api, w, feature, member, usage=workload_usage(n))
    elif op.startswith("commit"):
        rid = reserve(api, w, feature, "50", **extra)
        t.advance(n)
        cost = {
            "commit-usage": {"usage": workload_usage(n)},
            "commit-credits": {"credits": credits},
            "commit-held": None,
        }[op]
        commit(api, w, rid, cost)
    elif op == "release":
        rid = reserve(api, w, feature, credits, **extra)
        t.advance(n)
        release(api, w, rid)
    elif op == "expire":
        reserve(api, w, feature, credits, expires_in_seconds=1, **extra)
        t.advance(120)
        assert sweep() == 1
    elif op == "adjust":
        ok(api("POST", f"{w}/adjustments", {"credits": f"-{credits}", "reason": "fix"}), 201)
    else:  # the period ends and the reset job runs
        end = datetime.fromisoformat(ok(api("GET", w))["period"]["end"])
        t.set(max(t.now, end + timedelta(seconds=30)))  # time never goes back
        assert Periods().advance("p1").reset


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(OPERATIONS), st.integers(1, 30), st.sampled_from(GAPS)),
        min_size=1,
        max_size=9,
    ),
    projected=st.integers(0, 9),
)
def test_rollups_always_equal_the_fold_of_the_ledger(
    aws: Any,
    api: Api,
    project_ledger: Callable[[], None],
    table_items: Callable[..., list[Json]],
    steps: list[tuple[str, int, int]],
    projected: int,
) -> None:
    with (
        pytest.MonkeyPatch.context() as mp,
        table.temporary_table(aws, "ledger-fold") as name,
        frozen_clock(datetime(2026, 1, 30, 22, 0, tzinfo=UTC)) as t,
    ):
        mp.setenv("TABLE_NAME", name)
        ok(api("PUT", "/v1/wallets/p1", {"plan": "pro"}), 201)
        for i, (op, n, gap) in enumerate(steps):
            if i == projected:  # a projection part way: the last one replays what it did
                project_ledger()
            t.advance(gap)
            run_operation(api, t, op, n)
        project_ledger()
        items = table_items("p1")
        wallet = from_item(next(i for i in items if i["sk"]["S"] == "W"))
        assert len(ledger(items)) == int(wallet["seq"])
        assert_rollups_are_the_fold(items)


# -- Catalog.itemise ------------------------------------------------------------------------

# The prices as catalog.json writes them (read here, not through the code under test).
PRICES = json.loads(
    (Path(__file__).parents[2] / "layers/credit_meter/credit_meter/catalog.json").read_text(),
    parse_float=Decimal,
)
_METERS = sorted(PRICES["meters"])
_MODELS = sorted(PRICES["models"])


def exact_cost(line: UsageLine) -> Decimal:
    spec = PRICES["meters"][line.meter]
    if spec.get("per_tier"):
        assert line.model is not None
        tier = PRICES["models"][line.model]
        return line.quantity * Decimal(PRICES["tiers"][tier][line.meter]) / 1000
    return line.quantity * Decimal(spec["credits_per_unit"])


@st.composite
def usage_lines(draw: st.DrawFn) -> UsageLine:
    meter = draw(st.sampled_from(_METERS))
    model = draw(st.sampled_from(_MODELS)) if PRICES["meters"][meter].get("per_tier") else None
    digits = draw(st.integers(0, 6))
    quantity = Decimal(draw(st.integers(1, 10**9))).scaleb(-digits)
    return UsageLine(meter, quantity, model)


@settings(max_examples=200, deadline=None)
@given(st.lists(usage_lines(), min_size=1, max_size=12))
def test_itemised_costs_add_up_to_the_price(lines: list[UsageLine]) -> None:
    raw = [exact_cost(line) for line in lines]
    # the unrounded total, rounded once, half up, to a millionth
    total = sum(raw, Decimal(0)).quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")
    cat = catalog()
    priced = cat.itemise(lines)
    assert sum((p.cost for p in priced), Decimal(0)) == total == cat.price(lines)
    assert [(p.meter, p.model, p.quantity) for p in priced] == [
        (x.meter, x.model, x.quantity) for x in lines
    ]
    for p, exact in zip(priced, raw, strict=True):
        assert p.cost >= 0
        assert p.cost == p.cost.quantize(Decimal("0.000001"))
        # a line is off its exact cost by at most the rounding of every line
        assert abs(p.cost - exact) <= Decimal("0.000001") * len(lines)
