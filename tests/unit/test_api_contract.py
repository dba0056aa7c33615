"""The happy paths of the HTTP API and the shapes of its responses (docs/api.md).

Each test has a table of its own and a clock of its own (``credit_meter.core.clock``), starting at
2026-01-31 15:00 UTC, so periods, expiries and timestamps are exact.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from credit_meter.core.catalog import catalog
from credit_meter.core.errors import InvalidRequest
from credit_meter.metering.service import Cost, Metering, Request
from tests.helpers import FakeClock, frozen_clock, ok

Api = Callable[..., tuple[int, dict[str, str], Any]]

pytestmark = pytest.mark.usefixtures("fresh_table")

W = "/v1/wallets/w1"
START = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
AMOUNT = re.compile(r"^-?\d+(\.\d{1,6})?$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CATALOG = json.loads(
    (Path(__file__).parents[2] / "layers/credit_meter/credit_meter/catalog.json").read_text()
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


@pytest.fixture
def now() -> Iterator[FakeClock]:
    with frozen_clock(START) as fake:
        yield fake


@pytest.fixture
def wallet(api: Api, now: FakeClock) -> dict[str, Any]:
    """Wallet w1 on the free plan: 50 credits."""
    status, _, body = api("PUT", W, {"plan": "free"})
    assert status == 201, body
    return body


def money(api: Api) -> tuple[str, str, str]:
    body = ok(api("GET", W), 200)
    return body["balance"], body["held"], body["available"]


def reserve(api: Api, credits: str = "10", **extra: Any) -> dict[str, Any]:
    return ok(
        api("POST", f"{W}/reservations", {"feature": "chat", "credits": credits, **extra}), 201
    )


def fields(problem: dict[str, Any]) -> list[str]:
    """The fields a 422 problem names."""
    assert problem["type"] == "/problems/invalid-request", problem
    return [e["field"] for e in problem["errors"]]


# -- wallets --------------------------------------------------------------------------------


def test_put_creates_with_the_plan_allowance_then_updates(api: Api, now: FakeClock) -> None:
    created = ok(api("PUT", W, {"plan": "free"}), 201)
    assert created["plan"] == "free" and created["balance"] == "50"

    # an upgrade takes effect at once: the difference is granted for the rest of the period
    updated = ok(api("PUT", W, {"plan": "pro"}), 200)
    assert (updated["plan"], updated["pending_plan"]) == ("pro", None)
    assert (updated["balance"], updated["allowance"]) == ("2500", "2500")
    assert ok(api("GET", W), 200) == updated

    # a downgrade waits for the next reset
    downgraded = ok(api("PUT", W, {"plan": "starter"}), 200)
    assert (downgraded["plan"], downgraded["pending_plan"]) == ("pro", "starter")
    assert (downgraded["balance"], downgraded["allowance"]) == ("2500", "2500")
    # asking for the current plan again cancels it
    kept = ok(api("PUT", W, {"plan": "pro"}), 200)
    assert (kept["plan"], kept["pending_plan"], kept["balance"]) == ("pro", None, "2500")


def test_enterprise_wallet_takes_a_custom_allowance(api: Api, now: FakeClock) -> None:
    body = ok(api("PUT", W, {"plan": "enterprise", "allowance": "123.5"}), 201)
    assert (body["plan"], body["allowance"], body["balance"]) == ("enterprise", "123.5", "123.5")


def test_get_wallet_shape(api: Api, wallet: dict[str, Any]) -> None:
    body = ok(api("GET", W), 200)
    assert body == wallet
    assert body == {
        "wallet_id": "w1",
        "org_id": "org-test",  # the caller's organisation (tests/principals.py)
        "bypass": False,
        "plan": "free",
        "pending_plan": None,
        "anchor_day": 31,
        "overage": False,
        "state": "ok",
        "limits": {"alert_threshold": None, "allowed_limit": None, "remaining": None},
        # the period starts on the creation day and ends a month later, clamped to February
        "period": {"start": "2026-01-31T00:00:00.000Z", "end": "2026-02-28T00:00:00.000Z"},
        "balance": "50",
        "held": "0",
        "available": "50",
        "allowance": "50",
        "used": "0",
        "buckets": [
            {
                "source": "monthly",
                "remaining": "50",
                "expires_at": "2026-02-28T00:00:00.000Z",
                "priority": 10,
            }
        ],
    }


def test_amounts_are_decimal_strings(api: Api, wallet: dict[str, Any]) -> None:
    reserve(api, "0.000001")
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": 12.5}), 201)
    body = ok(api("GET", W), 200)
    amounts = [body[k] for k in ("balance", "held", "available", "allowance", "used")]
    amounts += [b["remaining"] for b in body["buckets"]]
    assert all(isinstance(a, str) and AMOUNT.match(a) for a in amounts), amounts
    assert (body["balance"], body["held"], body["available"]) == ("37.5", "0.000001", "37.499999")


# -- reservations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "lifetime"),
    [
        pytest.param({}, 300, id="default-lifetime"),
        pytest.param({"expires_in_seconds": 86400}, 86400, id="a-day"),
    ],
)
def test_reserve_holds_credits(
    api: Api, now: FakeClock, wallet: dict[str, Any], extra: dict[str, Any], lifetime: int
) -> None:
    body = reserve(api, "12.25", member_id="alice", **extra)
    assert body.keys() == {"reservation_id", "status", "credits", "expires_at"}
    assert body["reservation_id"].startswith("rsv_")
    assert (body["status"], body["credits"]) == ("held", "12.25")
    assert body["expires_at"] == iso(START + timedelta(seconds=lifetime))
    assert money(api) == ("50", "12.25", "37.75")


def test_reserve_refuses_a_lifetime_above_a_day(
    api: Api, wallet: dict[str, Any], table_items: Any
) -> None:
    assert catalog().max_hold_seconds == 86400
    before = table_items()
    body = {"feature": "chat", "credits": "1", "expires_in_seconds": 86401}
    status, _, problem = api("POST", f"{W}/reservations", body)
    assert (status, fields(problem)) == (422, ["expires_in_seconds"]), problem
    assert table_items() == before


@pytest.mark.parametrize(
    ("max_hold", "expires_in"),
    [
        pytest.param(86400, 86401, id="catalog-max-plus-one"),
        pytest.param(60, 61, id="lower-max"),
        pytest.param(60, None, id="default-above-a-lower-max"),  # the default is 300
    ],
)
def test_the_service_holds_reservations_to_the_catalog_maximum(
    wallet: dict[str, Any], table_items: Any, max_hold: int, expires_in: int | None
) -> None:
    service = Metering(cat=dataclasses.replace(catalog(), max_hold_seconds=max_hold))
    before = table_items()
    with pytest.raises(InvalidRequest) as refused:
        service.reserve("w1", Cost(credits=Decimal(1)), Request("h"), "chat", None, expires_in)
    assert [p.field for p in refused.value.problems] == ["expires_in_seconds"]
    assert table_items() == before
    held = service.reserve("w1", Cost(credits=Decimal(1)), Request("h"), "chat", None, max_hold)
    assert held.expires_at == int(START.timestamp()) + max_hold


def test_a_wallet_takes_a_bounded_number_of_open_reservations(
    api: Api, wallet: dict[str, Any]
) -> None:
    limit = catalog().max_open_holds
    held = [reserve(api, "0.01")["reservation_id"] for _ in range(limit)]

    status, _, problem = api("POST", f"{W}/reservations", {"feature": "chat", "credits": "0.01"})

    assert status == 409, problem
    assert problem["type"] == "/problems/too-many-open-reservations"
    # Ending one makes room again.
    ok(api("POST", f"{W}/reservations/{held[0]}/release"), 200)
    reserve(api, "0.01")


@pytest.mark.parametrize(
    ("usage", "credits"),
    [
        pytest.param(
            [{"meter": "input_tokens", "quantity": 1500, "model": "o3"}],
            "0.3",
            id="1500-input-tokens-advanced",
        ),
        pytest.param(
            [{"meter": "input_tokens", "quantity": 1500, "model": "gpt-4o-mini"}],
            "0.03",
            id="1500-input-tokens-fast",
        ),
        pytest.param(
            [{"meter": "output_tokens", "quantity": "2500", "model": "claude-sonnet"}],
            "1",
            id="2500-output-tokens-standard",
        ),
        pytest.param(
            [{"meter": "image_hd", "quantity": 2}, {"meter": "app_call", "quantity": 3}],
            "16.15",
            id="two-lines",
        ),
        pytest.param(
            [{"meter": "meeting_minute", "quantity": "0.5"}], "0.75", id="fractional-quantity"
        ),
    ],
)
def test_usage_priced_reserve(
    api: Api, wallet: dict[str, Any], usage: list[dict[str, Any]], credits: str
) -> None:
    body = ok(api("POST", f"{W}/reservations", {"feature": "chat", "usage": usage}), 201)
    assert body["credits"] == credits
    assert money(api)[1] == credits
    assert ok(api("POST", f"{W}/quote", {"usage": usage}), 200) == {"credits": credits}


@pytest.mark.parametrize(
    ("commit", "charged", "released", "after"),
    [
        pytest.param({"credits": "4"}, "4", "6", ("46", "0", "46"), id="less-than-held"),
        pytest.param({"credits": "10"}, "10", "0", ("40", "0", "40"), id="exactly-held"),
        pytest.param(None, "10", "0", ("40", "0", "40"), id="no-body-charges-the-hold"),
        pytest.param({}, "10", "0", ("40", "0", "40"), id="empty-body-charges-the-hold"),
        pytest.param({"credits": 0}, "0", "10", ("50", "0", "50"), id="free-action"),
        pytest.param({"credits": "15"}, "15", "0", ("35", "0", "35"), id="more-than-held"),
        pytest.param({"credits": "70"}, "70", "0", ("-20", "0", "-20"), id="overdraft"),
        pytest.param(
            {"usage": [{"meter": "input_tokens", "quantity": 1500, "model": "o3"}]},
            "0.3",
            "9.7",
            ("49.7", "0", "49.7"),
            id="usage",
        ),
    ],
)
def test_commit(
    api: Api,
    wallet: dict[str, Any],
    commit: Any,
    charged: str,
    released: str,
    after: tuple[str, str, str],
) -> None:
    rid = reserve(api, "10")["reservation_id"]
    body = ok(api("POST", f"{W}/reservations/{rid}/commit", commit), 200)
    assert body == {
        "reservation_id": rid,
        "status": "committed",
        "charged": charged,
        "released": released,
    }
    assert money(api) == after


def test_release_returns_the_hold(api: Api, wallet: dict[str, Any]) -> None:
    rid = reserve(api, "10")["reservation_id"]
    assert money(api) == ("50", "10", "40")
    body = ok(api("POST", f"{W}/reservations/{rid}/release"), 200)
    assert body == {"reservation_id": rid, "status": "released", "released": "10"}
    assert money(api) == ("50", "0", "50")


def test_overdraft_refuses_new_holds_until_a_grant_repays_it(
    api: Api, wallet: dict[str, Any]
) -> None:
    rid = reserve(api, "10")["reservation_id"]
    ok(api("POST", f"{W}/reservations/{rid}/commit", {"credits": "70"}), 200)
    assert money(api) == ("-20", "0", "-20")
    assert ok(api("GET", W), 200)["buckets"] == []

    for path, body in [
        ("reservations", {"feature": "chat", "credits": "1"}),
        ("charges", {"feature": "chat", "credits": "1"}),
    ]:
        status, _, problem = api("POST", f"{W}/{path}", body)
        assert status == 402
        assert problem["type"] == "/problems/insufficient-credits"
        assert (problem["available"], problem["requested"]) == ("-20", "1")

    ok(api("POST", f"{W}/grants", {"credits": "15", "source": "purchase"}), 201)
    assert money(api) == ("-5", "0", "-5")  # the grant repaid the overdraft first
    assert api("POST", f"{W}/reservations", {"feature": "chat", "credits": "1"})[0] == 402

    ok(api("POST", f"{W}/grants", {"credits": "10", "source": "purchase"}), 201)
    assert money(api) == ("5", "0", "5")
    assert [(b["source"], b["remaining"]) for b in ok(api("GET", W), 200)["buckets"]] == [
        ("purchase", "5")
    ]
    reserve(api, "5")
    assert money(api) == ("5", "5", "0")


# -- charges, quotes, grants ----------------------------------------------------------------


def test_charge(api: Api, wallet: dict[str, Any]) -> None:
    body = ok(
        api("POST", f"{W}/charges", {"feature": "chat", "member_id": "bob", "credits": "7.5"}), 201
    )
    assert body.keys() == {"charge_id", "charged"}
    assert body["charge_id"].startswith("chg_") and body["charged"] == "7.5"
    assert money(api) == ("42.5", "0", "42.5")
    assert ok(api("GET", W), 200)["used"] == "7.5"


@pytest.mark.parametrize(
    ("literal", "charged"),
    [
        pytest.param("2", "2", id="integer"),
        pytest.param("2.50", "2.5", id="number"),
        pytest.param("1.5e1", "15", id="number-with-exponent"),
        pytest.param("25E-1", "2.5", id="number-with-negative-exponent"),
        pytest.param("0.1234560", "0.123456", id="number-seventh-digit-zero"),
        pytest.param('"2.50"', "2.5", id="string"),
        pytest.param('"007"', "7", id="string-leading-zeros"),
        pytest.param('"0.1234560"', "0.123456", id="string-seventh-digit-zero"),
    ],
)
def test_charge_amount_spellings(
    api: Api, wallet: dict[str, Any], literal: str, charged: str
) -> None:
    # JSON numbers may use the exponent syntax; strings hold plain decimals
    body = ok(api("POST", f"{W}/charges", f'{{"feature": "chat", "credits": {literal}}}'), 201)
    assert body["charged"] == charged


def test_charge_more_than_available_is_402_and_changes_nothing(
    api: Api, wallet: dict[str, Any], table_items: Any
) -> None:
    reserve(api, "10")
    before = table_items("w1")
    status, headers, problem = api("POST", f"{W}/charges", {"feature": "chat", "credits": "41"})
    assert status == 402
    assert headers["content-type"] == "application/problem+json"
    assert problem == {
        "type": "/problems/insufficient-credits",
        "title": "Insufficient credits",
        "status": 402,
        "detail": "41 credits requested, 40 available",
        "available": "40",
        "requested": "41",
    }
    assert table_items("w1") == before


def test_quote_prices_usage_and_writes_nothing(
    api: Api, wallet: dict[str, Any], table_items: Any
) -> None:
    before = table_items()
    usage = [
        {"meter": "voice_minute", "quantity": 2},
        {"meter": "web_search", "quantity": 9},
        {"meter": "reasoning_tokens", "quantity": 500, "model": "claude-haiku"},
    ]
    assert ok(api("POST", f"{W}/quote", {"usage": usage}), 200) == {"credits": "6.04"}
    assert table_items() == before


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        pytest.param(
            {"credits": "100", "source": "purchase"},
            {"credits": "100", "source": "purchase", "priority": 20, "expires_at": None},
            id="purchase",
        ),
        pytest.param(
            {"credits": 5, "source": "promo", "expires_at": "2026-02-07T12:00:00Z"},
            {
                "credits": "5",
                "source": "promo",
                "priority": 10,
                "expires_at": "2026-02-07T12:00:00.000Z",
            },
            id="expiring-promo",
        ),
        pytest.param(
            {
                "credits": "1.5",
                "source": "manual",
                "priority": 0,
                "expires_at": "2026-03-01T00:00:00+02:00",
            },
            {
                "credits": "1.5",
                "source": "manual",
                "priority": 0,
                "expires_at": "2026-02-28T22:00:00.000Z",
            },
            id="priority-and-offset",
        ),
    ],
)
def test_grant(
    api: Api, wallet: dict[str, Any], grant: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = ok(api("POST", f"{W}/grants", grant), 201)
    assert body["grant_id"].startswith("grt_")
    assert {k: v for k, v in body.items() if k != "grant_id"} == expected
    assert money(api)[0] == str(Decimal(50) + Decimal(expected["credits"]))
    assert {
        "source": expected["source"],
        "remaining": expected["credits"],
        "expires_at": expected["expires_at"],
        "priority": expected["priority"],
    } in ok(api("GET", W), 200)["buckets"]


HUNDRED_YEARS = timedelta(days=100 * 365)


@pytest.mark.parametrize(
    ("expires_at", "granted"),
    [
        pytest.param(START + timedelta(seconds=1), True, id="a-second-ahead"),
        pytest.param(START + HUNDRED_YEARS, True, id="100-years-ahead"),
        pytest.param(START + HUNDRED_YEARS + timedelta(seconds=1), False, id="over-100-years"),
        pytest.param(START, False, id="now"),
        pytest.param(START - timedelta(seconds=1), False, id="a-second-ago"),
    ],
)
def test_grant_expiry_is_in_the_future_and_within_100_years(
    api: Api, wallet: dict[str, Any], table_items: Any, expires_at: datetime, granted: bool
) -> None:
    before = table_items()
    grant = {
        "credits": "5",
        "source": "promo",
        "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    status, _, body = api("POST", f"{W}/grants", grant)
    if granted:
        assert status == 201, body
        assert body["expires_at"] == iso(expires_at)
        assert money(api)[0] == "55"
    else:
        assert (status, fields(body)) == (422, ["expires_at"]), body
        assert table_items() == before


def test_burn_down_order_spends_promotional_and_monthly_credits_before_purchased(
    api: Api, wallet: dict[str, Any]
) -> None:
    def grant(credits: str, source: str, expires_at: str | None = None) -> None:
        body = {"credits": credits, "source": source}
        if expires_at:
            body["expires_at"] = expires_at
        ok(api("POST", f"{W}/grants", body), 201)

    def buckets() -> list[tuple[str, str]]:
        return [(b["source"], b["remaining"]) for b in ok(api("GET", W), 200)["buckets"]]

    grant("100", "purchase")
    grant("5", "welcome")  # never expires: after everything that does, before paid credits
    grant("10", "promo", "2026-02-02T00:00:00Z")  # expires before the monthly allowance
    grant("3", "referral", "2026-02-28T00:00:00Z")  # expires with it: promotional goes first
    assert buckets() == [
        ("promo", "10"),
        ("referral", "3"),
        ("monthly", "50"),
        ("welcome", "5"),
        ("purchase", "100"),
    ]

    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "64"}), 201)
    assert buckets() == [("welcome", "4"), ("purchase", "100")]
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "10"}), 201)
    assert buckets() == [("purchase", "94")]
    assert money(api) == ("94", "0", "94")


def test_prices_list_every_meter_model_and_plan(api: Api) -> None:
    body = ok(api("GET", "/v1/prices"), 200)
    meters = {m["meter"]: m for m in body["meters"]}
    assert meters.keys() == CATALOG["meters"].keys()
    for name, spec in CATALOG["meters"].items():
        if spec.get("per_tier"):
            assert meters[name]["credits_per_unit_by_tier"] == {
                tier: str(Decimal(prices[name]).normalize())
                for tier, prices in CATALOG["tiers"].items()
            }
        else:
            assert meters[name]["credits_per_unit"] == spec["credits_per_unit"]
    assert {m["model"]: m["tier"] for m in body["models"]} == CATALOG["models"]
    assert {p["plan"]: p["allowance"] for p in body["plans"]} == {
        plan: spec["allowance"] for plan, spec in CATALOG["plans"].items()
    }


# -- request encoding -----------------------------------------------------------------------


def test_a_base64_encoded_json_body_is_decoded(api: Api, wallet: dict[str, Any]) -> None:
    held = api("POST", f"{W}/reservations", {"feature": "chat", "credits": "2.5"}, base64=True)
    rid = ok(held, 201)["reservation_id"]
    assert money(api) == ("50", "2.5", "47.5")
    committed = api("POST", f"{W}/reservations/{rid}/commit", {"credits": "1"}, base64=True)
    assert ok(committed, 200)["charged"] == "1"
    charged = api("POST", f"{W}/charges", {"feature": "chat", "credits": 2}, base64=True)
    assert ok(charged, 201)["charged"] == "2"
    assert money(api) == ("47", "0", "47")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param('{"credits": ', 400, id="malformed-json"),
        pytest.param("[]", 400, id="json-array"),
        pytest.param({"feature": "chat", "credits": "+1"}, 422, id="bad-field"),
    ],
)
def test_a_bad_base64_encoded_body_is_refused_like_any_other(
    api: Api, wallet: dict[str, Any], table_items: Any, body: Any, status: int
) -> None:
    before = table_items()
    got, headers, problem = api("POST", f"{W}/reservations", body, base64=True)
    assert (got, headers["content-type"]) == (status, "application/problem+json"), problem
    assert table_items() == before


# -- transactions ---------------------------------------------------------------------------


def test_transactions_newest_first_with_released_holds_at_zero(
    api: Api, now: FakeClock, wallet: dict[str, Any], project_ledger: Callable[[], None]
) -> None:
    committed = reserve(api, "6", member_id="alice")["reservation_id"]
    now.advance()
    ok(api("POST", f"{W}/reservations/{committed}/commit", {"credits": "4"}), 200)
    now.advance()
    released = reserve(api, "3")["reservation_id"]
    now.advance()
    ok(api("POST", f"{W}/reservations/{released}/release"), 200)
    now.advance()
    charge = ok(
        api("POST", f"{W}/charges", {"feature": "search", "member_id": "bob", "credits": "2"}), 201
    )["charge_id"]
    now.advance()
    grant = ok(api("POST", f"{W}/grants", {"credits": "10", "source": "promo"}), 201)["grant_id"]
    project_ledger()

    body = ok(api("GET", f"{W}/transactions"), 200)
    assert body["next_cursor"] is None
    monthly = body["items"][-1]["transaction_id"]
    assert monthly.startswith("grt_")
    at = START.timestamp()
    expected = [
        # transaction_id, type, credits, balance_after, feature, member_id, status, seconds
        (grant, "grant", "10", "54", None, None, "posted", 5),
        (charge, "charge", "-2", "44", "search", "bob", "posted", 4),
        (released, "reservation", "0", "46", "chat", None, "released", 3),
        (committed, "reservation", "-4", "46", "chat", "alice", "committed", 1),
        (monthly, "grant", "50", "50", None, None, "posted", 0),
    ]
    sources = {grant: "promo", monthly: "monthly"}
    assert body["items"] == [
        {
            "transaction_id": tid,
            "type": kind,
            "credits": credits,
            "balance_after": after,
            "at": iso(datetime.fromtimestamp(at + seconds, UTC)),
            "feature": feature,
            "member_id": member,
            "status": status,
            "refunded": status == "released",
            "source": sources.get(tid),
            "reason": None,
            "held": None if kind != "reservation" else body["items"][i]["held"],
            "lines": [],
            "tokens": None,
            "billing": "credits",
        }
        for i, (tid, kind, credits, after, feature, member, status, seconds) in enumerate(expected)
    ]
    # balance_after is the running sum of credits, oldest first (docs/domain.md invariant 2)
    running = Decimal(0)
    for item in reversed(body["items"]):
        running += Decimal(item["credits"])
        assert Decimal(item["balance_after"]) == running
    assert money(api)[0] == "54"


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_transactions_pages_follow_the_cursor(
    api: Api, wallet: dict[str, Any], project_ledger: Callable[[], None], limit: int
) -> None:
    for n in range(1, 6):
        ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": str(n)}), 201)
    project_ledger()
    everything = ok(api("GET", f"{W}/transactions"), 200)["items"]
    assert len(everything) == 6
    assert [i["credits"] for i in everything] == ["-5", "-4", "-3", "-2", "-1", "50"]

    pages, cursor = [], None
    while True:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        page = ok(api("GET", f"{W}/transactions", query=query), 200)
        assert len(page["items"]) <= limit
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item for page in pages for item in page] == everything
    assert len(pages) in (-(-6 // limit), -(-6 // limit) + 1)  # a last empty page is allowed


def test_transactions_of_a_new_wallet(api: Api, wallet: dict[str, Any]) -> None:
    # before the projector has run there are no entries, and that is not an error
    assert ok(api("GET", f"{W}/transactions"), 200) == {"items": [], "next_cursor": None}


def test_a_percent_encoded_wallet_id_names_the_same_wallet(api: Any) -> None:
    # Clients that encode every reserved character send ':' as %3A; API Gateway routes on the
    # decoded id, and so does the handler (the router alone would see "w%3Aenc").
    assert api("PUT", "/v1/wallets/w:enc", {"plan": "starter"})[0] == 201
    status, _, body = api("GET", "/v1/wallets/w%3Aenc")
    assert (status, body["wallet_id"]) == (200, "w:enc")
    assert api("GET", "/v1/wallets/w%3aenc/limits")[0] == 200


@pytest.mark.parametrize("day", ["5.0", "5.000", "0.5e1"])
def test_a_whole_number_written_with_a_fraction_is_an_integer(api: Any, day: str) -> None:
    # JSON Schema counts 5.0 an integer (the document says `integer`), so the API does too.
    wallet = f"w-int-{day.replace('.', '-')}"
    body = '{"plan": "starter", "anchor_day": ' + day + "}"
    status, _, answer = api("PUT", f"/v1/wallets/{wallet}", body)
    assert (status, answer["anchor_day"]) == (201, 5)


@pytest.mark.parametrize("day", ["5.5", "1e400", "5e-1"])
def test_a_number_with_a_fraction_is_not_an_integer(api: Any, day: str) -> None:
    status, _, answer = api(
        "PUT", "/v1/wallets/w-frac", '{"plan": "starter", "anchor_day": ' + day + "}"
    )
    assert status == 422, answer
