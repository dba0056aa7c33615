"""Bad input on the routes of limits, alert thresholds and member budgets (issue "Spending limits
and member budgets"): the right 4xx problem, never a 5xx, and nothing written.

Every case of ``CASES`` runs against one module-wide setup (``world``):

* ``w1`` on the free plan (50 credits) with limits (alert at 10, allowed 40), its own
  thresholds, a budget of 5 for member ``alice`` with an open hold of 2 counted against it, and
  a charge of 3 by ``bob`` (no budget): used 3, held 2, 35 left under the limit, 3 in alice's
  budget;
* ``w2`` on the free plan with budgets for 32 members (``m00`` … ``m31``), the most a wallet
  may have.

After its request each case compares ``GET /v1/wallets/w1``, ``GET …/w1/limits`` and a scan of
the whole table with what they showed after the setup: a refused request writes nothing, so
the cases cannot disturb one another (a case that wrote would fail itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.bad_inputs import case, check_problem

Api = Callable[..., tuple[int, dict[str, str], Any]]

W = "/v1/wallets/w1"
NOWHERE = "/v1/wallets/no-such-wallet"
BAD_ID = "/v1/wallets/-dash-first"


LIMITS = f"{W}/limits"
ALERTS = f"{W}/alerts"
BUDGET = f"{W}/members/alice/budget"
MEMBERS = f"{W}/members"


# -- routes and a valid body for each -------------------------------------------------------

ROUTES: dict[str, tuple[str, str, Any]] = {
    "put-limits": ("PUT", LIMITS, {"alert_threshold": "20", "allowed_limit": "30"}),
    "put-alerts": ("PUT", ALERTS, {"thresholds": [{"type": "consumed_percent", "value": "50"}]}),
    "put-budget": ("PUT", BUDGET, {"budget": "7"}),
}
READS: dict[str, str] = {
    "get-limits": LIMITS,
    "get-alerts": ALERTS,
    "get-members": MEMBERS,
    "get-budget": BUDGET,
}

OVERSIZED = json.dumps({"budget": "1", "pad": "x" * (16 * 1024)})


# These routes read their body through the same code as every other route of the metering
# function (its ``_body``), which tests/unit/test_bad_inputs.py runs through the whole table of
# malformed bodies. Here each PUT gets one of each kind of refusal: JSON that does not parse,
# JSON that is not an object, a media type that is not JSON, a body too large, none at all.


def body_cases() -> list[Any]:
    """What is wrong with the body itself, before any field is looked at: every PUT."""
    malformed = {"malformed-json": '{"budget": ', "json-array": "[]"}
    media = {"text-plain": ({"content-type": "text/plain"}, '{"budget": "1"}')}
    cases = []
    for route, (method, path, _) in ROUTES.items():
        for name, raw in malformed.items():
            cases.append(case(f"{route}-{name}", method, path, raw, 400))
        for name, (headers, raw) in media.items():
            cases.append(case(f"{route}-{name}", method, path, raw, 415, headers=headers))
        cases.append(case(f"{route}-oversized", method, path, OVERSIZED, 413))
        cases.append(case(f"{route}-empty-body", method, path, None, 400))
    return cases


def wallet_cases() -> list[Any]:
    """An unknown or malformed wallet id with an otherwise valid request."""
    cases = []
    for route, (method, path, body) in ROUTES.items():
        cases.append(case(f"{route}-unknown-wallet", method, path.replace(W, NOWHERE), body, 404))
        cases.append(
            case(f"{route}-bad-wallet-id", method, path.replace(W, BAD_ID), body, 422, "wallet_id")
        )
        cases.append(
            case(
                f"{route}-wallet-id-too-long",
                method,
                path.replace("w1", "w" * 129),
                body,
                422,
                "wallet_id",
            )
        )
    for route, path in READS.items():
        cases.append(case(f"{route}-unknown-wallet", "GET", path.replace(W, NOWHERE), None, 404))
        cases.append(
            case(f"{route}-bad-wallet-id", "GET", path.replace(W, BAD_ID), None, 422, "wallet_id")
        )
        cases.append(
            case(
                f"{route}-wallet-id-non-ascii",
                "GET",
                path.replace(W, "/v1/wallets/wället"),
                None,
                422,
                "wallet_id",
            )
        )
    return cases


# -- PUT /limits ------------------------------------------------------------------------------

AMOUNTS: dict[str, Any] = {
    # not an amount of credits (nor of money) that is zero or more
    "negative": "-1",
    "negative-micro": "-0.000001",
    "negative-number": -5,
    "7-decimals": "1.0000001",
    "7-decimals-number": 1.0000001,
    "over-10^12": "1000000000000.000001",
    "1e30": "1e30",
    "words": "forty",
    "empty-string": "",
    "bool": True,
    "list": [40],
    "object": {"amount": "40"},
    "NaN-string": "NaN",
    "Infinity-string": "Infinity",
    "exponent-string": "4e1",
    "plus-sign": "+40",
    "leading-dot": ".5",
    "comma": "40,5",
    "padded": " 40 ",
    "non-ascii-digit": "\u0664\u0660",
}

LIMITS_FIELDS: dict[str, tuple[Any, str | tuple[str, ...]]] = {
    **{
        f"allowed-limit-{name}": ({"allowed_limit": value}, "allowed_limit")
        for name, value in AMOUNTS.items()
    },
    **{
        f"alert-threshold-{name}": (
            {"alert_threshold": value, "allowed_limit": "40"},
            "alert_threshold",
        )
        for name, value in AMOUNTS.items()
    },
    "alert-above-the-limit": (
        {"alert_threshold": "41", "allowed_limit": "40"},
        ("alert_threshold", "allowed_limit"),
    ),
    "alert-above-the-limit-by-a-micro-credit": (
        {"alert_threshold": "40.000001", "allowed_limit": "40"},
        ("alert_threshold", "allowed_limit"),
    ),
    "alert-above-a-zero-limit": (
        {"alert_threshold": "0.000001", "allowed_limit": 0},
        ("alert_threshold", "allowed_limit"),
    ),
    "alert-above-the-limit-in-eur": (
        {"alert_threshold": "0.41", "allowed_limit": "0.4", "currency": "eur"},
        ("alert_threshold", "allowed_limit"),
    ),
    "negative-limit-in-eur": ({"allowed_limit": "-0.01", "currency": "eur"}, "allowed_limit"),
    "7-decimals-in-eur": ({"allowed_limit": "0.0000001", "currency": "eur"}, "allowed_limit"),
    "currency-not-the-top-up-one": ({"allowed_limit": "1", "currency": "usd"}, "currency"),
    "currency-two-letters": ({"allowed_limit": "1", "currency": "eu"}, "currency"),
    "currency-four-letters": ({"allowed_limit": "1", "currency": "euro"}, "currency"),
    "currency-symbol": ({"allowed_limit": "1", "currency": "€"}, "currency"),
    "currency-number": ({"allowed_limit": "1", "currency": 978}, "currency"),
    "currency-empty": ({"allowed_limit": "1", "currency": ""}, "currency"),
    "currency-padded": ({"allowed_limit": "1", "currency": " eur"}, "currency"),
    "currency-credits": ({"allowed_limit": "1", "currency": "credits"}, "currency"),
    "extra-field": ({"allowed_limit": "40", "limit": "40"}, "limit"),
    "misspelled-field": ({"allowed_limits": "40"}, "allowed_limits"),
    "member-id-field": ({"allowed_limit": "40", "member_id": "alice"}, "member_id"),
}


# -- PUT /alerts -------------------------------------------------------------------------------


def threshold(kind: Any = "consumed_percent", value: Any = "50", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "value": value, **extra}


ALERTS_FIELDS: dict[str, tuple[Any, str | tuple[str, ...]]] = {
    "thresholds-missing": ({}, "thresholds"),
    "thresholds-string": ({"thresholds": "75"}, "thresholds"),
    "thresholds-object": ({"thresholds": threshold()}, "thresholds"),
    "thresholds-number": ({"thresholds": 75}, "thresholds"),
    "thresholds-eleven": (
        {"thresholds": [threshold(value=str(n)) for n in range(1, 12)]},
        "thresholds",
    ),
    "thresholds-repeated": ({"thresholds": [threshold(), threshold()]}, "thresholds"),
    "thresholds-repeated-as-number-and-string": (
        {"thresholds": [threshold(value=50), threshold(value="50.000000")]},
        "thresholds",
    ),
    "threshold-null": ({"thresholds": [None]}, "thresholds.0"),
    "threshold-string": ({"thresholds": ["consumed_percent:50"]}, "thresholds.0"),
    "consumed-percent-zero": ({"thresholds": [threshold(value="0")]}, "thresholds.0"),
    "consumed-percent-over-1000": (
        {"thresholds": [threshold(value="1000.000001")]},
        "thresholds.0",
    ),
    "consumed-percent-negative": ({"thresholds": [threshold(value="-1")]}, "thresholds.0.value"),
    "remaining-percent-over-100": (
        {"thresholds": [threshold("remaining_percent", "100.000001")]},
        "thresholds.0",
    ),
    "remaining-percent-negative": (
        {"thresholds": [threshold("remaining_percent", "-0.000001")]},
        "thresholds.0.value",
    ),
    "remaining-credits-negative": (
        {"thresholds": [threshold("remaining_credits", "-5")]},
        "thresholds.0.value",
    ),
    "remaining-credits-over-10^12": (
        {"thresholds": [threshold("remaining_credits", "1000000000001")]},
        "thresholds.0.value",
    ),
    "value-7-decimals": ({"thresholds": [threshold(value="50.0000001")]}, "thresholds.0.value"),
    "value-words": ({"thresholds": [threshold(value="half")]}, "thresholds.0.value"),
    "value-bool": ({"thresholds": [threshold(value=True)]}, "thresholds.0.value"),
    "value-null": ({"thresholds": [threshold(value=None)]}, "thresholds.0.value"),
    "value-NaN-string": ({"thresholds": [threshold(value="NaN")]}, "thresholds.0.value"),
    "value-percent-sign": ({"thresholds": [threshold(value="50%")]}, "thresholds.0.value"),
    "value-missing": ({"thresholds": [{"type": "consumed_percent"}]}, "thresholds.0.value"),
    "type-missing": ({"thresholds": [{"value": "50"}]}, "thresholds.0.type"),
    "type-unknown": ({"thresholds": [threshold("spend")]}, "thresholds.0.type"),
    "type-upper-case": ({"thresholds": [threshold("CONSUMED_PERCENT")]}, "thresholds.0.type"),
    "type-number": ({"thresholds": [threshold(1)]}, "thresholds.0.type"),
    "type-null": ({"thresholds": [threshold(None)]}, "thresholds.0.type"),
    "threshold-extra-field": (
        {"thresholds": [threshold(unit="percent")]},
        "thresholds.0.unit",
    ),
    "second-threshold-bad": (
        {"thresholds": [threshold(), threshold("remaining_credits", "-1")]},
        "thresholds.1.value",
    ),
    "extra-field": ({"thresholds": [], "enabled": False}, "enabled"),
}


# -- PUT …/members/{member_id}/budget --------------------------------------------------------

BUDGET_FIELDS: dict[str, tuple[Any, str | tuple[str, ...]]] = {
    "budget-missing": ({}, "budget"),
    **{f"budget-{name}": ({"budget": value}, "budget") for name, value in AMOUNTS.items()},
    "extra-field": ({"budget": "5", "cap": "5"}, "cap"),
    "member-id-in-body": ({"budget": "5", "member_id": "bob"}, "member_id"),
    "currency": ({"budget": "5", "currency": "eur"}, "currency"),
}

BAD_MEMBER_IDS: dict[str, str] = {
    "dash-first": "-alice",
    "underscore-first": "_alice",
    "dot-first": ".alice",
    "too-long": "a" * 65,
    "space": "al ice",
    "encoded-space": "al%20ice",
    "encoded-slash": "a%2Fb",
    "percent": "100%",
    "plus": "al+ice",
    "comma": "al,ice",
}


def field_cases() -> list[Any]:
    cases = []
    tables = [
        ("put-limits", LIMITS, LIMITS_FIELDS),
        ("put-alerts", ALERTS, ALERTS_FIELDS),
        ("put-budget", BUDGET, BUDGET_FIELDS),
    ]
    for route, path, fields in tables:
        for name, (body, field) in fields.items():
            cases.append(case(f"{route}-{name}", "PUT", path, body, 422, field))
    for name, member in BAD_MEMBER_IDS.items():
        path = f"{W}/members/{member}/budget"
        cases.append(
            case(f"put-budget-member-{name}", "PUT", path, {"budget": "1"}, 422, "member_id")
        )
        cases.append(case(f"get-budget-member-{name}", "GET", path, None, 422, "member_id"))
    # the member is checked before the wallet is read
    cases.append(
        case(
            "get-budget-bad-member-of-unknown-wallet",
            "GET",
            f"{NOWHERE}/members/-x/budget",
            None,
            422,
            "member_id",
        )
    )
    return cases


# -- refusals that depend on the wallet --------------------------------------------------------


def state_cases() -> list[Any]:
    def member_budget(member: str) -> str:
        return f"{W}/members/{member}/budget"

    return [
        # no budget to read or to uncap
        case(
            "get-budget-of-a-member-without-one",
            "GET",
            member_budget("bob"),
            None,
            404,
            code="member-budget-not-found",
        ),
        case(
            "get-budget-member-ids-are-case-sensitive",
            "GET",
            member_budget("ALICE"),
            None,
            404,
            code="member-budget-not-found",
        ),
        case(
            "get-budget-of-a-member-with-every-allowed-sign",
            "GET",
            member_budget("a_b.c:d@e-f"),
            None,
            404,
            code="member-budget-not-found",
        ),
        case(
            "get-budget-64-characters",
            "GET",
            member_budget("a" * 64),
            None,
            404,
            code="member-budget-not-found",
        ),
        case(
            "put-budget-null-for-a-member-without-one",
            "PUT",
            member_budget("bob"),
            {"budget": None},
            404,
            code="member-budget-not-found",
        ),
        case(
            "put-budget-null-in-an-unknown-wallet",
            "PUT",
            f"{NOWHERE}/members/alice/budget",
            {"budget": None},
            404,
        ),
        case(
            "get-budget-in-an-unknown-wallet",
            "GET",
            f"{NOWHERE}/members/alice/budget",
            None,
            404,
        ),
        # a 33rd budget
        case(
            "put-budget-33rd-member",
            "PUT",
            "/v1/wallets/w2/members/m32/budget",
            {"budget": "1"},
            409,
            code="too-many-member-budgets",
        ),
        case(
            "put-budget-33rd-member-uncapped",
            "PUT",
            "/v1/wallets/w2/members/m32/budget",
            {"budget": None},
            404,
            code="member-budget-not-found",
        ),
        # debits past the limit or a budget are refused and write nothing (the period's
        # first refusal, in the setup, marked it)
        case(
            "charge-past-the-limit",
            "POST",
            f"{W}/charges",
            {"feature": "chat", "credits": "35.000001"},
            403,
            code="spending-limit-reached",
        ),
        case(
            "reserve-past-the-limit",
            "POST",
            f"{W}/reservations",
            {"feature": "chat", "credits": "35.000001"},
            403,
            code="spending-limit-reached",
        ),
        case(
            "keyed-charge-past-the-limit",
            "POST",
            f"{W}/charges",
            {"feature": "chat", "credits": "36"},
            403,
            headers={"Idempotency-Key": "bad-input-charge"},
            code="spending-limit-reached",
        ),
        case(
            "keyed-reserve-past-the-limit",
            "POST",
            f"{W}/reservations",
            {"feature": "chat", "credits": "36"},
            403,
            headers={"Idempotency-Key": "bad-input-reserve"},
            code="spending-limit-reached",
        ),
        case(
            "charge-past-the-member-budget",
            "POST",
            f"{W}/charges",
            {"feature": "chat", "credits": "3.000001", "member_id": "alice"},
            403,
            code="member-budget-reached",
        ),
        case(
            "keyed-reserve-past-the-member-budget",
            "POST",
            f"{W}/reservations",
            {"feature": "chat", "credits": "3.000001", "member_id": "alice"},
            403,
            headers={"Idempotency-Key": "bad-input-member"},
            code="member-budget-reached",
        ),
        # the open hold's id without its member tag, or with another
        case(
            "commit-stripped-member-tag",
            "POST",
            f"{W}/reservations/{{stripped}}/commit",
            None,
            404,
            code="reservation-not-found",
        ),
        case(
            "release-stripped-member-tag",
            "POST",
            f"{W}/reservations/{{stripped}}/release",
            None,
            404,
            code="reservation-not-found",
        ),
        case(
            "commit-another-member-tag",
            "POST",
            f"{W}/reservations/{{other_tag}}/commit",
            {"credits": "1"},
            404,
            code="reservation-not-found",
        ),
    ]


def unknown_route_cases() -> list[Any]:
    routes = [
        ("DELETE", LIMITS),
        ("POST", LIMITS),
        ("PATCH", LIMITS),
        ("DELETE", ALERTS),
        ("POST", ALERTS),
        ("POST", MEMBERS),
        ("PUT", MEMBERS),
        ("DELETE", BUDGET),
        ("POST", BUDGET),
        ("GET", f"{W}/members/alice"),
        ("PUT", f"{W}/members/alice"),
        ("PUT", f"{W}/members/alice/budget/extra"),
        ("PUT", f"{W}/members//budget"),
        ("GET", f"{W}/limit"),
    ]
    return [
        case(f"unknown-route-{method}-{path}", method, path, None, 404, code="not-found")
        for method, path in routes
    ]


CASES = [
    *body_cases(),
    *wallet_cases(),
    *field_cases(),
    *state_cases(),
    *unknown_route_cases(),
]


# -- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(module_table: str, api: Api, table_items: Any) -> dict[str, Any]:
    """The wallets of the module doc, and what w1 and a table scan show after the setup."""

    def call(method: str, path: str, body: Any, status: int) -> Any:
        got, _, out = api(method, path, body)
        assert got == status, out
        return out

    call("PUT", W, {"plan": "free"}, 201)
    call("PUT", LIMITS, {"alert_threshold": "10", "allowed_limit": "40"}, 200)
    call("PUT", ALERTS, {"thresholds": [{"type": "remaining_credits", "value": "5"}]}, 200)
    call("PUT", BUDGET, {"budget": "5"}, 200)
    hold = call(
        "POST", f"{W}/reservations", {"feature": "chat", "credits": "2", "member_id": "alice"}, 201
    )
    call("POST", f"{W}/charges", {"feature": "chat", "credits": "3", "member_id": "bob"}, 201)
    call("PUT", "/v1/wallets/w2", {"plan": "free"}, 201)
    for n in range(32):
        call("PUT", f"/v1/wallets/w2/members/m{n:02d}/budget", {"budget": "1"}, 200)

    # The first refusal of a period marks it on the wallet (for the limit.reached alert);
    # later ones write nothing.
    call("POST", f"{W}/charges", {"feature": "chat", "credits": "36"}, 403)
    call("POST", f"{W}/charges", {"feature": "chat", "credits": "4", "member_id": "alice"}, 403)

    rid = hold["reservation_id"]
    stripped, member_tag = rid.rsplit("_", 1)
    assert len(member_tag) == 12
    limits = call("GET", LIMITS, None, 200)
    assert (limits["used"], limits["held"], limits["remaining"]) == ("3", "2", "35")
    budget = call("GET", BUDGET, None, 200)
    assert (budget["used"], budget["held"], budget["remaining"]) == ("0", "2", "3")
    return {
        "rids": {"stripped": stripped, "other_tag": f"{stripped}_{'f' * 12}"},
        "wallet": api("GET", W),
        "limits": api("GET", LIMITS),
        "items": table_items(),
    }


@pytest.mark.parametrize(("request_", "expect"), CASES)
def test_bad_input_is_refused_and_writes_nothing(
    api: Api,
    table_items: Any,
    world: dict[str, Any],
    request_: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    path = request_["path"].format(**world["rids"])
    response = api(request_["method"], path, request_["body"], request_["headers"] or {})
    problem = check_problem(response, expect)
    if expect["status"] == 403:
        assert {"limit", "remaining"} <= problem.keys(), problem
    # Nothing written: the wallet and its limits read the same, the table holds the same.
    assert api("GET", W) == world["wallet"]
    assert api("GET", LIMITS) == world["limits"]
    assert table_items() == world["items"]
