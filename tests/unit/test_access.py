"""Who may call what (docs/access.md), through the real metering handler and its middleware.

The table :data:`EXPECTED` spells out, for every route of ``credit_meter.api.access.RULES``, what
each kind of caller may do: the four roles (user tokens) and the two scopes (client tokens).
It is checked against ``RULES`` (a policy change must change it too), the routes against the
handler's (a new route cannot be missed), and then every route × caller runs on its own
organisation's wallet and on another's:

* allowed, own organisation: the handler runs (a GET answers as usual; a write is sent the body
  ``{"probe": 1}``, which no route accepts, so it answers 422 naming ``probe`` and writes
  nothing);
* allowed, another organisation: exactly what a wallet that does not exist answers (status and
  problem document, word for word but the id);
* not allowed: 403 ``/problems/forbidden``, the same for both organisations.

One module table holds ``wa`` (organisation ``org-a``; a member budget, three charges, an open
reservation, a promo grant) and ``wb`` (``org-b``); tests that write use wallets of their own or
show that nothing changed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

import pytest

from credit_meter.api import access
from credit_meter.api.access import METER, PLATFORM, RULES, Rule, Tenancy
from credit_meter.billing.plans import Plans
from credit_meter.core.errors import OrgNotFound, WalletNotFound
from credit_meter.storage.store import Store
from devtools.apigw import FakeContext, http_event
from tests.helpers import PROBLEM_JSON, ok
from tests.principals import org_token, token

Api = Callable[..., tuple[int, dict[str, str], Any]]
Json = dict[str, Any]

ORG_A, ORG_B = "org-a", "org-b"
A, B, MISSING = "wa", "wb", "w-missing"
PROBE = {"probe": 1}  # a field no request body has: 422 once the handler reads the body
DOC = Path(__file__).parents[2] / "docs" / "access.md"


def caller(name: str, org: str = ORG_A) -> dict[str, str]:
    """A user token with the role ``name``, or a client token with the scope ``name``."""
    return token(name, org=org) if name in access.ROLES else token(org=org, scopes=[name])


# The callers, in the columns' order: a user token per role, a client token per scope.
COLUMNS = [*access.ROLES, *access.SCOPES]
CALLERS = {name: caller(name) for name in COLUMNS}
MEMBER = CALLERS["member"]["sub"]  # a member's usage is attributed by their sub

# ✓ allowed; own: a member, for their own data only; self: the user named in the path only.
# Columns: owner, admin, member, viewer (roles), credits:meter, credits:admin (scopes).
EXPECTED: dict[str, str] = {
    "PUT /v1/wallets/{wallet_id}":                                        "✓ ✓ — — — ✓",
    "GET /v1/wallets/{wallet_id}":                                        "✓ ✓ ✓ ✓ ✓ ✓",
    "PUT /v1/wallets/{wallet_id}/bypass":                                 "— — — — — ✓",
    "POST /v1/wallets/{wallet_id}/reservations":                          "— — — — ✓ —",
    "POST /v1/wallets/{wallet_id}/reservations/{reservation_id}/commit":  "— — — — ✓ —",
    "POST /v1/wallets/{wallet_id}/reservations/{reservation_id}/release": "— — — — ✓ —",
    "POST /v1/wallets/{wallet_id}/charges":                               "— — — — ✓ —",
    "POST /v1/wallets/{wallet_id}/quote":                                 "✓ ✓ ✓ ✓ ✓ ✓",
    "GET /v1/prices":                                                     "✓ ✓ ✓ ✓ ✓ ✓",
    "POST /v1/wallets/{wallet_id}/grants":                                "— — — — — ✓",
    "GET /v1/wallets/{wallet_id}/grants":                                 "✓ ✓ — ✓ ✓ ✓",
    "POST /v1/wallets/{wallet_id}/grants/{grant_id}/void":                "— — — — — ✓",
    "POST /v1/wallets/{wallet_id}/adjustments":                           "— — — — — ✓",
    "POST /v1/promo-codes":                                               "— — — — — ✓",
    "POST /v1/wallets/{wallet_id}/referral":                              "— — — — — ✓",
    "POST /v1/wallets/{wallet_id}/transfers":                             "✓ ✓ — — — ✓",
    "POST /v1/wallets/{wallet_id}/redeem":                                "✓ ✓ — — — ✓",
    "GET /v1/wallets/{wallet_id}/transactions":                           "✓ ✓ own ✓ ✓ ✓",
    "GET /v1/wallets/{wallet_id}/transactions.csv":                       "✓ ✓ own ✓ ✓ ✓",
    "GET /v1/wallets/{wallet_id}/usage/summary":                          "✓ ✓ ✓ ✓ ✓ ✓",
    "GET /v1/wallets/{wallet_id}/usage":                                  "✓ ✓ — ✓ ✓ ✓",
    "GET /v1/orgs/{org_id}/usage":                                        "✓ ✓ — ✓ ✓ ✓",
    "GET /v1/topups/offers":                                              "✓ ✓ ✓ ✓ ✓ ✓",
    "POST /v1/wallets/{wallet_id}/checkout":                              "✓ ✓ — — — —",
    "GET /v1/wallets/{wallet_id}/payments":                               "✓ ✓ — ✓ ✓ ✓",
    "GET /v1/wallets/{wallet_id}/payments/{payment_id}/invoice":          "✓ ✓ — ✓ ✓ ✓",
    "PUT /v1/wallets/{wallet_id}/auto-topup":                             "✓ ✓ — — — —",
    "GET /v1/wallets/{wallet_id}/auto-topup":                             "✓ ✓ — ✓ ✓ ✓",
    "PUT /v1/wallets/{wallet_id}/limits":                                 "✓ ✓ — — — —",
    "GET /v1/wallets/{wallet_id}/limits":                                 "✓ ✓ — ✓ ✓ ✓",
    "PUT /v1/wallets/{wallet_id}/alerts":                                 "✓ ✓ — — — —",
    "GET /v1/wallets/{wallet_id}/alerts":                                 "✓ ✓ — ✓ ✓ ✓",
    "GET /v1/wallets/{wallet_id}/members":                                "✓ ✓ — ✓ ✓ ✓",
    "PUT /v1/wallets/{wallet_id}/members/{member_id}/budget":             "✓ ✓ — — — —",
    "GET /v1/wallets/{wallet_id}/members/{member_id}/budget":             "✓ ✓ own ✓ ✓ ✓",
    "PUT /v1/users/{user_id}/byok":                                       "self self self self — —",
    "GET /v1/users/{user_id}/byok":                                       "self self self self — —",
    "DELETE /v1/users/{user_id}/byok":                                    "self self self self — —",
    "GET /v1/test-clock":                                                 "— — — — — ✓",
    "POST /v1/test-clock":                                                "— — — — — ✓",
}  # fmt: skip
# Served by the BYOK function (functions/byok_api), not by the metering handler.
BYOK_ROUTES = {key for key in RULES if key.endswith("/byok")}
METERING_ROUTES = sorted(set(RULES) - BYOK_ROUTES)

# What an allowed request on the caller's own wallet answers, when not 200 (a GET) or 422
# naming ``probe`` (a write).
ALLOWED_STATUS = {
    "GET /v1/wallets/{wallet_id}/payments/{payment_id}/invoice": (404, "payment-not-found"),
}


def mark(rule: Rule, caller: str) -> str:
    """The doc's mark for what ``rule`` lets ``caller`` (a role or a scope) do."""
    if caller in access.ROLES:
        if rule.self_only:
            return "self"
        if caller in rule.roles:
            return "✓"
        return "own" if caller in rule.own else "—"
    return "✓" if caller in rule.scopes and not rule.self_only else "—"


def path_of(route: str, wallet: str = A, org: str = ORG_A, member: str = MEMBER) -> str:
    """The route's path for this wallet / organisation (other ids: made up)."""
    values = {
        "wallet_id": wallet,
        "org_id": org,
        "member_id": member,
        "reservation_id": "rsv_probe",
        "grant_id": "grt_probe",
        "payment_id": "pi_probe",
    }
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], route.split(" ", 1)[1])


def renamed(body: Any, old: str, new: str) -> Any:
    """A problem document with one id put for another (the only thing that may differ)."""
    return json.loads(json.dumps(body).replace(old, new))


def forbidden(response: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = response
    assert (status, body["type"], body["status"]) == (403, "/problems/forbidden", 403), body
    assert headers["content-type"] == PROBLEM_JSON


def unauthenticated(response: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = response
    assert (status, body["type"], body["status"]) == (401, "/problems/unauthenticated", 401), body
    assert headers["content-type"] == PROBLEM_JSON
    assert headers["www-authenticate"].startswith("Bearer")


@pytest.fixture(autouse=True)
def _test_clocks_in_test_mode(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test clock's routes exist in test mode only (without it they are 404 to everyone:
    tests/unit/test_test_clock.py), so their rows are checked in test mode."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and str(callspec.params.get("route", "")).endswith("/test-clock"):
        monkeypatch.setenv("TEST_MODE", "true")


# -- the world --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(module_table: str, api: Api, project_ledger: Callable[[], None]) -> Json:
    """``wa`` in org-a with a member budget, charges by the member, by ana and by nobody, an
    open reservation and a promo grant; ``wb`` in org-b; a promo code."""

    owner_a, owner_b = org_token(ORG_A), org_token(ORG_B)
    wa, wb = f"/v1/wallets/{A}", f"/v1/wallets/{B}"
    ok(api("PUT", wa, {"plan": "pro"}, as_=owner_a), 201)
    ok(api("PUT", wb, {"plan": "pro"}, as_=owner_b), 201)
    ok(api("PUT", f"{wa}/members/{MEMBER}/budget", {"budget": "100"}, as_=owner_a))
    for member, credits in ((MEMBER, "1"), ("ana", "2"), (None, "3")):
        body = {"feature": "chat", "credits": credits, **({"member_id": member} if member else {})}
        ok(api("POST", f"{wa}/charges", body, as_=owner_a), 201)
    held = ok(
        api("POST", f"{wa}/reservations", {"feature": "chat", "credits": "1"}, as_=owner_a), 201
    )
    granted = ok(api("POST", f"{wa}/grants", {"credits": "5", "source": "promo"}, as_=owner_a), 201)
    ok(api("POST", "/v1/promo-codes", {"code": "ACCESS10", "credits": "10"}, as_=owner_a), 201)
    project_ledger()
    return {"reservation_id": held["reservation_id"], "grant_id": granted["grant_id"]}


# -- the policy table -------------------------------------------------------------------------


def test_the_table_is_the_policy() -> None:
    assert set(EXPECTED) == set(RULES)
    for route, rule in RULES.items():
        assert EXPECTED[route].split() == [mark(rule, c) for c in COLUMNS], route


def test_every_route_of_the_handler_has_a_rule(metering_app: Any) -> None:
    resolver = metering_app.app
    handled = {
        f"{r.method.upper()} {r.openapi_path}"
        for r in [*resolver._static_routes, *resolver._dynamic_routes]
    }
    assert handled == set(METERING_ROUTES)
    byok = {f"{m} /v1/users/{{user_id}}/byok" for m in ("PUT", "GET", "DELETE")}
    assert byok == BYOK_ROUTES


def test_the_doc_shows_the_policy() -> None:
    text = DOC.read_text(encoding="utf-8")
    header = "| route | " + " | ".join(f"`{c}`" if ":" in c else c for c in COLUMNS) + " |"
    assert header in text
    for route, rule in RULES.items():
        row = f"| `{route}` | " + " | ".join(mark(rule, c) for c in COLUMNS) + " |"
        assert row in text, row


# -- every route × every caller × own and other organisation ----------------------------------


@pytest.mark.parametrize("who", COLUMNS)
@pytest.mark.parametrize("route", METERING_ROUTES)
def test_route_by_caller_and_organisation(api: Api, world: Json, route: str, who: str) -> None:
    claims = CALLERS[who]
    allowed = EXPECTED[route].split()[COLUMNS.index(who)] != "—"
    method = route.split(" ", 1)[0]
    body = PROBE if method != "GET" else None
    tenant = "{wallet_id}" in route or "{org_id}" in route

    def call(wallet: str = A, org: str = ORG_A) -> tuple[int, dict[str, str], Any]:
        return api(method, path_of(route, wallet, org), body, as_=claims)

    own = call()
    if not allowed:
        forbidden(own)
        if tenant:  # decided before any data is read: another org's wallet reads the same
            assert call(B, ORG_B)[::2] == own[::2]
            assert call(MISSING, "org-nowhere")[::2] == own[::2]
        return

    status, _, out = own
    expected = ALLOWED_STATUS.get(route, (422, "invalid-request") if body else (200, None))
    assert status == expected[0], out
    if expected[1] is not None:
        assert out["type"] == f"/problems/{expected[1]}", out
    if body is not None:
        assert "probe" in [e["field"] for e in out["errors"]], out

    if "{wallet_id}" in route:
        other = call(B)
        if route == "PUT /v1/wallets/{wallet_id}":  # a missing one would be created
            missing = api("GET", f"/v1/wallets/{MISSING}", as_=claims)
        else:
            missing = call(MISSING)
        assert (other[0], other[1]["content-type"]) == (404, PROBLEM_JSON)
        assert other[2] == renamed(missing[2], MISSING, B)
        assert other[2]["type"] == "/problems/wallet-not-found"
    elif "{org_id}" in route:
        other = call(org=ORG_B)
        # as an organisation without wallets answers its own members
        empty = api(method, path_of(route, org="org-empty"), as_=caller(who, "org-empty"))
        assert (other[0], other[2]) == (404, renamed(empty[2], "org-empty", ORG_B))
        assert other[2]["type"] == "/problems/organisation-not-found"


# -- who is calling ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", METERING_ROUTES)
def test_no_token_is_401(api: Api, world: Json, route: str) -> None:
    method = route.split(" ", 1)[0]
    unauthenticated(api(method, path_of(route), PROBE if method != "GET" else None, as_=None))
    unauthenticated(api(method, path_of(route, B, ORG_B), None, as_=None))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": "u1", "role": "owner"}, id="no-org"),
        pytest.param({"org_id": ORG_A, "role": "owner"}, id="no-sub"),
        pytest.param({"sub": "u1", "org_id": "", "role": "owner"}, id="empty-org"),
        pytest.param({"sub": "u1", "org_id": "a#b", "role": "owner"}, id="malformed-org"),
        pytest.param({"sub": "u1", "org_id": "x" * 129, "role": "owner"}, id="long-org"),
        pytest.param({"sub": "u1", "org_id": ORG_A, "role": "superuser"}, id="unknown-role"),
        pytest.param({"sub": "u1", "org_id": ORG_A}, id="no-role-no-scope"),
        pytest.param({"sub": "u1", "org_id": ORG_A, "scope": "openid email"}, id="unknown-scopes"),
        pytest.param(
            {"sub": "u1", "org_id": ORG_A, "role": "Owner", "scope": METER}, id="role-case"
        ),
        pytest.param({}, id="no-claims"),
    ],
)
def test_incomplete_claims_are_401(api: Api, world: Json, claims: dict[str, str]) -> None:
    unauthenticated(api("GET", f"/v1/wallets/{A}", as_=claims))
    unauthenticated(api("POST", f"/v1/wallets/{A}/charges", PROBE, as_=claims))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": "u1", "custom:org_id": ORG_A, "custom:role": "viewer"}, id="cognito"),
        pytest.param(
            {"sub": "c1", "org_id": ORG_A, "scope": f"credit-meter/{METER}"}, id="prefixed-scope"
        ),
        pytest.param({"sub": "c1", "org_id": ORG_A, "scope": f"openid {METER}"}, id="scope-list"),
    ],
)
def test_claims_as_identity_providers_write_them(
    api: Api, world: Json, claims: dict[str, str]
) -> None:
    status, _, body = api("GET", f"/v1/wallets/{A}", as_=claims)
    assert (status, body["wallet_id"]) == (200, A)


def test_the_route_is_the_one_matched_not_the_events_route_key(
    metering_app: Any, world: Json
) -> None:
    """The rule applied is the matched route's, whatever ``routeKey`` and ``pathParameters``
    the event carries (API Gateway sets them, but the handler does not rely on them)."""
    event = http_event(
        "POST",
        f"/v1/wallets/{A}/charges",
        {"feature": "chat", "credits": "1"},
        claims=CALLERS["viewer"],
    )
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /v1/prices"
    event["pathParameters"] = {"wallet_id": "elsewhere"}
    with warnings.catch_warnings():  # Powertools: no metric published, as expected
        warnings.filterwarnings("ignore", "No application metrics to publish")
        response = metering_app.handler(event, FakeContext())
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["type"] == "/problems/forbidden"


def test_an_unknown_path_is_404_with_or_without_a_token(api: Api, world: Json) -> None:
    for claims in (None, CALLERS["viewer"]):
        status, _, body = api("DELETE", f"/v1/wallets/{A}", as_=claims)
        assert (status, body["type"]) == (404, "/problems/not-found")


# -- members: their own activity and budget ---------------------------------------------------


def test_members_read_their_own_activity_only(api: Api, world: Json) -> None:
    log = f"/v1/wallets/{A}/transactions"
    member = CALLERS["member"]
    everyone = api("GET", log, query={"type": "charge"}, as_=CALLERS["viewer"])[2]["items"]
    assert sorted(str(i["member_id"]) for i in everyone) == sorted([MEMBER, "ana", "None"])
    for query in ({"type": "charge"}, {"type": "charge", "member_id": MEMBER}):
        status, _, body = api("GET", log, query=query, as_=member)
        assert status == 200, body
        assert [(i["member_id"], i["credits"]) for i in body["items"]] == [(MEMBER, "-1")]
    forbidden(api("GET", log, query={"member_id": "ana"}, as_=member))
    # the CSV export, the same way
    status, _, text = api("GET", f"{log}.csv", query={"type": "charge"}, as_=member)
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["member_id"], r["credits"]) for r in rows] == [(MEMBER, "-1")]
    forbidden(api("GET", f"{log}.csv", query={"member_id": "ana"}, as_=member))


def test_members_read_their_own_budget_only(api: Api, world: Json) -> None:
    member = CALLERS["member"]
    status, _, body = api("GET", f"/v1/wallets/{A}/members/{MEMBER}/budget", as_=member)
    assert (status, body["member_id"], body["budget"]) == (200, MEMBER, "100")
    forbidden(api("GET", f"/v1/wallets/{A}/members/ana/budget", as_=member))
    forbidden(api("GET", f"/v1/wallets/{A}/members", as_=member))


# -- another organisation's wallets: not there, and untouched ---------------------------------


def writes(world: Json) -> list[tuple[str, str, Any]]:
    """A valid write for every write route on wa (each would change it if it were allowed)."""
    wa = f"/v1/wallets/{A}"
    rid, gid = world["reservation_id"], world["grant_id"]
    urls = {"success_url": "https://example.com/ok", "cancel_url": "https://example.com/no"}
    return [
        ("PUT", wa, {"plan": "starter"}),
        ("PUT", f"{wa}/bypass", {"enabled": True}),
        ("POST", f"{wa}/reservations", {"feature": "chat", "credits": "1"}),
        ("POST", f"{wa}/reservations/{rid}/commit", {"credits": "1"}),
        ("POST", f"{wa}/reservations/{rid}/release", None),
        ("POST", f"{wa}/charges", {"feature": "chat", "credits": "1"}),
        ("POST", f"{wa}/grants", {"credits": "5", "source": "manual"}),
        ("POST", f"{wa}/grants/{gid}/void", None),
        ("POST", f"{wa}/adjustments", {"credits": "-1", "reason": "intrusion"}),
        ("POST", f"{wa}/transfers", {"to_wallet_id": B, "credits": "1"}),
        ("POST", f"{wa}/redeem", {"code": "ACCESS10"}),
        ("POST", f"{wa}/referral", {"referrer_wallet_id": B}),
        ("POST", f"{wa}/checkout", {"pack": "pack_500", **urls}),
        ("PUT", f"{wa}/auto-topup", {"enabled": False}),
        ("PUT", f"{wa}/limits", {"allowed_limit": "10"}),
        ("PUT", f"{wa}/alerts", {"thresholds": []}),
        ("PUT", f"{wa}/members/{MEMBER}/budget", {"budget": "1"}),
        ("PUT", f"{wa}/members/ana/budget", {"budget": "1"}),
    ]


def test_writes_on_another_organisations_wallet_change_nothing(
    api: Api, world: Json, table_items: Callable[..., list[Json]]
) -> None:
    intruder = org_token(ORG_B)  # may do everything, in org-b
    write_routes = {r for r in METERING_ROUTES if not r.startswith("GET ")} - {
        "POST /v1/promo-codes",  # no wallet: the platform's own
        "POST /v1/wallets/{wallet_id}/quote",  # writes nothing
    }
    assert len(writes(world)) >= len(write_routes)
    before = table_items()
    for method, path, body in writes(world):
        status, _, out = api(method, path, body, as_=intruder)
        assert (status, out) == (
            404,
            {
                "type": "/problems/wallet-not-found",
                "title": "Wallet not found",
                "status": 404,
                "detail": f"wallet {A!r} does not exist",
            },
        ), (method, path)
    assert table_items() == before


def test_a_transfer_to_another_organisation_reads_as_to_a_missing_wallet(
    api: Api, world: Json, table_items: Callable[..., list[Json]]
) -> None:
    before = table_items()
    owner = org_token(ORG_A)
    to_other = api(
        "POST", f"/v1/wallets/{A}/transfers", {"to_wallet_id": B, "credits": "1"}, as_=owner
    )
    to_none = api(
        "POST", f"/v1/wallets/{A}/transfers", {"to_wallet_id": MISSING, "credits": "1"}, as_=owner
    )
    assert (to_none[0], to_none[2]["detail"]) == (
        404,
        f"wallet {MISSING!r} (to_wallet_id) does not exist",
    )
    assert (to_other[0], to_other[2]) == (404, renamed(to_none[2], MISSING, B))
    assert table_items() == before


def test_put_wallet_creates_in_the_callers_organisation(
    api: Api, world: Json, table_items: Callable[..., list[Json]]
) -> None:
    admin_a, admin_b = token("admin", org=ORG_A), token("admin", org=ORG_B)
    status, _, made = api("PUT", "/v1/wallets/w-admin", {"plan": "free"}, as_=admin_a)
    assert (status, made["org_id"]) == (201, ORG_A)
    status, _, usage = api("GET", f"/v1/orgs/{ORG_A}/usage", as_=admin_a)
    assert "w-admin" in [w["wallet_id"] for w in usage["wallets"]]

    before = table_items()
    for body in ({"plan": "starter"}, {"plan": "starter", "org_id": ORG_B}):
        status, _, out = api("PUT", "/v1/wallets/w-admin", body, as_=admin_b)
        assert (status, out["detail"]) == (404, "wallet 'w-admin' does not exist")
    # the body may name the caller's organisation only
    status, _, out = api(
        "PUT", "/v1/wallets/w-admin", {"plan": "pro", "org_id": ORG_B}, as_=admin_a
    )
    assert (status, [e["field"] for e in out["errors"]]) == (422, ["org_id"])
    status, _, out = api(
        "PUT", "/v1/wallets/w-admin-2", {"plan": "pro", "org_id": ORG_B}, as_=admin_a
    )
    assert (status, [e["field"] for e in out["errors"]]) == (422, ["org_id"])
    assert table_items() == before
    status, _, same = api(
        "PUT", "/v1/wallets/w-admin", {"plan": "free", "org_id": ORG_A}, as_=admin_a
    )
    assert (status, same["org_id"]) == (200, ORG_A)


def test_a_wallet_without_an_organisation_is_adopted_by_the_platform_only(
    api: Api, world: Json, table_items: Callable[..., list[Json]]
) -> None:
    Plans().put_wallet("w-legacy", "free")  # made before organisations were required
    legacy = "/v1/wallets/w-legacy"
    before = table_items()
    for claims in (*CALLERS.values(), org_token(ORG_B)):
        status, _, out = api("GET", legacy, as_=claims)
        assert (status, out["type"]) == (404, "/problems/wallet-not-found")
    for claims in (CALLERS["owner"], CALLERS["admin"], token("owner", org=ORG_A, scopes=[METER])):
        status, _, out = api("PUT", legacy, {"plan": "free"}, as_=claims)
        assert (status, out["detail"]) == (404, "wallet 'w-legacy' does not exist")
    assert table_items() == before

    status, _, adopted = api("PUT", legacy, {"plan": "free"}, as_=CALLERS[PLATFORM])
    assert (status, adopted["org_id"]) == (200, ORG_A)
    assert api("GET", legacy, as_=CALLERS["viewer"])[0] == 200
    # org-a's now: the platform of another organisation cannot take it
    status, _, out = api("PUT", legacy, {"plan": "free"}, as_=token(org=ORG_B, scopes=[PLATFORM]))
    assert (status, out["type"]) == (404, "/problems/wallet-not-found")


def test_bypass_is_the_platforms_switch(api: Api, world: Json) -> None:
    path = f"/v1/wallets/{A}/bypass"
    for enabled in (True, False):
        status, _, body = api("PUT", path, {"enabled": enabled}, as_=CALLERS[PLATFORM])
        assert (status, body["wallet_id"], body["bypass"]) == (200, A, enabled), body
    for bad in ({}, {"enabled": "yes"}, {"enabled": True, "extra": 1}):
        status, _, body = api("PUT", path, bad, as_=CALLERS[PLATFORM])
        assert status == 422, body
    forbidden(api("PUT", path, {"enabled": True}, as_=CALLERS["owner"]))


# -- the hot path stays at one round trip -----------------------------------------------------


@pytest.fixture
def dynamodb_calls(world: Json) -> Iterator[list[str]]:
    """The DynamoDB operations the handler makes while the test runs."""
    from credit_meter.storage import store

    seen: list[str] = []
    events = store.dynamodb_client().meta.events

    def count(model: Any, **_: Any) -> None:
        seen.append(model.name)

    events.register("before-call.dynamodb", count)
    yield seen
    events.unregister("before-call.dynamodb", count)


def test_a_warm_reserve_is_one_dynamodb_request(api: Api, dynamodb_calls: list[str]) -> None:
    meter = CALLERS[METER]
    hold = {"feature": "chat", "credits": "1"}
    assert api("POST", f"/v1/wallets/{A}/reservations", hold, as_=meter)[0] == 201
    dynamodb_calls.clear()
    status, _, held = api("POST", f"/v1/wallets/{A}/reservations", hold, as_=meter)
    assert status == 201
    assert dynamodb_calls == ["UpdateItem"]
    dynamodb_calls.clear()
    rid = held["reservation_id"]
    assert api("POST", f"/v1/wallets/{A}/reservations/{rid}/release", as_=meter)[0] == 200
    assert dynamodb_calls == ["TransactWriteItems"]


# -- Tenancy itself ---------------------------------------------------------------------------


class _Wallets:
    """A store of wallet items (by wallet id) that counts its reads."""

    def __init__(self, **orgs: str | None) -> None:
        self.table = "tenancy-test"
        self.items = {w: ({} if o is None else {"org": o}) for w, o in orgs.items()}
        self.reads = 0

    def get(self, key: dict[str, str]) -> dict[str, Any] | None:
        self.reads += 1
        return self.items.get(key["pk"].removeprefix("W#"))


@pytest.fixture
def wallets() -> Iterator[_Wallets]:
    access.forget_wallet_orgs()
    yield _Wallets(wa=ORG_A, wb=ORG_B, legacy=None)
    access.forget_wallet_orgs()


def principal(org: str = ORG_A, *scopes: str) -> access.Principal:
    return access.Principal("u1", org, "owner", frozenset(scopes))


def test_tenancy_reads_an_organisation_once(wallets: _Wallets) -> None:
    tenancy = Tenancy(cast(Store, wallets))
    tenancy.wallet(principal(), "wa")
    tenancy.wallet(principal(), "wa")
    with pytest.raises(WalletNotFound, match=r"^wallet 'wa' does not exist$"):
        tenancy.wallet(principal(ORG_B), "wa")
    assert wallets.reads == 1
    with pytest.raises(WalletNotFound, match=r"^wallet 'wb' does not exist$"):
        tenancy.wallet(principal(), "wb")  # another org's: cached too
    Tenancy(cast(Store, wallets)).wallet(principal(ORG_B), "wb")
    assert wallets.reads == 2


def test_tenancy_never_caches_a_missing_or_org_less_wallet(wallets: _Wallets) -> None:
    tenancy = Tenancy(cast(Store, wallets))
    for _ in range(2):
        with pytest.raises(WalletNotFound, match=r"^wallet 'new' does not exist$"):
            tenancy.wallet(principal(), "new")
        tenancy.wallet(principal(), "new", creating=True)
    assert wallets.reads == 4
    wallets.items["new"] = {"org": ORG_B}  # created meanwhile, in another organisation
    with pytest.raises(WalletNotFound):
        tenancy.wallet(principal(), "new", creating=True)

    for creating in (False, True):
        with pytest.raises(WalletNotFound, match=r"^wallet 'legacy' does not exist$"):
            tenancy.wallet(principal(ORG_A, METER), "legacy", creating=creating)
    with pytest.raises(WalletNotFound):
        tenancy.wallet(principal(ORG_A, PLATFORM), "legacy")  # adopting is a PUT
    tenancy.wallet(principal(ORG_A, PLATFORM), "legacy", creating=True)
    wallets.items["legacy"] = {"org": ORG_A}  # adopted
    reads = wallets.reads
    tenancy.wallet(principal(), "legacy")
    tenancy.wallet(principal(), "legacy")
    assert wallets.reads == reads + 1


def test_the_tenancy_cache_is_bounded(wallets: _Wallets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "_ORG_CACHE_MAX", 2)
    tenancy = Tenancy(cast(Store, wallets))
    wallets.items.update({"wc": {"org": ORG_A}})
    for wallet in ("wa", "wc", "wb"):  # the third drops the oldest, wa
        with pytest.raises(WalletNotFound) if wallet == "wb" else nullcontext():
            tenancy.wallet(principal(), wallet)
    assert wallets.reads == 3
    tenancy.wallet(principal(), "wc")
    assert wallets.reads == 3
    tenancy.wallet(principal(), "wa")
    assert wallets.reads == 4


def test_tenancy_of_an_organisation(wallets: _Wallets) -> None:
    Tenancy(cast(Store, wallets)).org(principal(), ORG_A)
    with pytest.raises(OrgNotFound, match=r"^organisation org-b has no wallets$"):
        Tenancy(cast(Store, wallets)).org(principal(), ORG_B)
    assert wallets.reads == 0
