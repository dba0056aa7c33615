"""Bad input on the usage report routes (summary, series, activity log and its filters, the CSV
export, organisation usage) and on ``org_id`` in ``PUT /v1/wallets/{id}``: the right 4xx
problem naming the right field, never a 5xx, and nothing written.

Every case of ``CASES`` runs against one module-wide setup (``world``), read at 2026-04-12 12:00
UTC:

* ``w1`` (free, organisation ``acme``, created 2026-04-01, so its period runs to May 1) with a
  priced charge by ``ana``, a credits-only charge, a released reservation and an adjustment,
  all projected into its ledger and rollups;
* ``w2`` (free, ``acme`` too), untouched.

Every request comes from an owner of ``acme`` with both scopes (``tests/principals.py``), unless
a case names another caller.

After its request each case compares a scan of the whole table with what it held after the
setup, byte for byte: a refused request writes nothing, so the cases cannot disturb one another
(a case that wrote would fail itself); a last test checks that w1's reports read the same too.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from tests.bad_inputs import case, check_problem, sent_as
from tests.helpers import frozen_clock
from tests.principals import org_token, token

Api = Callable[..., tuple[int, dict[str, str], Any]]

W = "/v1/wallets/w1"
NOWHERE = "/v1/wallets/no-such-wallet"
SUMMARY = f"{W}/usage/summary"
SERIES = f"{W}/usage"
LOG = f"{W}/transactions"
CSV = f"{W}/transactions.csv"
ORG = "/v1/orgs/acme/usage"
ACME = org_token("acme")
GLOBEX = org_token("globex")  # another tenant
NOW = datetime(2026, 4, 12, 12, 0, tzinfo=UTC)


def enc(value: str) -> str:
    """A query value as a client sends it (percent-encoded: ``+``, ``#``, spaces, …)."""
    return quote(value, safe="")


def b64(key: bytes) -> str:
    """A cursor as the log writes them: the sort key, base64url without padding."""
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


WALLET_ROUTES = {"summary": SUMMARY, "series": SERIES, "log": LOG, "csv": CSV}
LISTS = {"log": LOG, "csv": CSV}

# base64url of sort keys that are not ledger entries, and of nothing at all
BAD_CURSORS = {
    "garbage": "!!!not-a-cursor!!!",
    "empty": "",
    "wallet-key": "Vw",  # "W"
    "record-key": "UiNIMTIz",  # "R#H123"
    "grants-key": "RyN4",  # "G#x"
    "day-rollup-key": "VSNEIzIwMjYtMDQtMDE",  # "U#D#2026-04-01"
    "too-long": "A" * 201,
    # an entry's prefix without a ledger position: "T#~~" sorts after every entry, "T#123"
    # is not one of the keys the log returns
    "entry-prefix-not-a-seq": b64(b"T#~~"),
    "entry-seq-too-short": b64(b"T#123"),
    # "T#" and 63 zeros: an entry's prefix, longer than any sort key
    "entry-key-too-long": b64(b"T#" + b"0" * 63),
}

DAY_OR_MONTH_NAMES = ("from", "to")

# -- wallet and organisation ids --------------------------------------------------------------


def id_cases() -> list[Any]:
    cases = []
    for route, path in WALLET_ROUTES.items():
        cases.append(case(f"{route}-unknown-wallet", "GET", path.replace(W, NOWHERE), None, 404))
        for name, bad in {
            "dash-first": "-w1",
            "underscore-first": "_w1",
            "too-long": "w" * 129,
            "non-ascii": "wället",
            "encoded-space": "w%201",
        }.items():
            bad_path = path.replace(W, f"/v1/wallets/{bad}")
            cases.append(case(f"{route}-wallet-{name}", "GET", bad_path, None, 422, "wallet_id"))
    # an unknown wallet with every filter or range, and with a cursor
    for route, path in LISTS.items():
        for query in (
            "day=2026-04-01",
            "type=charge&member_id=ana&feature=chat",
            "cursor=VCMwMDAwMDAwMDAwMDk",
        ):
            cases.append(
                case(
                    f"{route}-unknown-wallet-{query}",
                    "GET",
                    path.replace(W, NOWHERE),
                    None,
                    404,
                    query=query,
                )
            )
    for query in ("group_by=member", "granularity=month", "from=2026-04-01&to=2026-04-02"):
        cases.append(
            case(
                f"series-unknown-wallet-{query}",
                "GET",
                f"{NOWHERE}/usage",
                None,
                404,
                query=query,
            )
        )
    # organisations
    cases.append(
        case(
            "org-without-wallets",
            "GET",
            "/v1/orgs/nobody/usage",
            None,
            404,
            code="organisation-not-found",
        )
    )
    cases.append(
        case(
            "org-of-another-tenant",
            "GET",
            ORG,
            None,
            404,
            code="organisation-not-found",
            as_=GLOBEX,
        )
    )
    cases.append(
        case(
            "org-of-another-tenant-for-a-viewer",
            "GET",
            ORG,
            None,
            404,
            code="organisation-not-found",
            as_=token("viewer", org="globex"),
        )
    )
    cases.append(
        case(
            "org-named-like-a-wallet",
            "GET",
            "/v1/orgs/w2/usage",
            None,
            404,
            code="organisation-not-found",
        )
    )
    for name, bad in {
        "dash-first": "-acme",
        "dot-first": ".acme",
        "too-long": "a" * 129,
        "non-ascii": "äcme",
        "encoded-space": "ac%20me",
        "bang": "ac!me",
    }.items():
        cases.append(case(f"org-id-{name}", "GET", f"/v1/orgs/{bad}/usage", None, 422, "org_id"))
    return cases


def put_org_cases() -> list[Any]:
    """``org_id`` in ``PUT /v1/wallets/{id}``: on the existing w1 and w2, and on a new wallet."""
    bad_ids: dict[str, Any] = {
        "empty": "",
        "dash-first": "-acme",
        "too-long": "a" * 129,
        "space": "ac me",
        "slash": "acme/x",
        "non-ascii": "äcme",
        "number": 5,
        "bool": True,
        "list": ["acme"],
        "object": {"id": "acme"},
    }
    cases = []
    for wallet in ("w1", "w2", "new-wallet"):
        for name, value in bad_ids.items():
            if wallet == "w2" and name not in ("empty", "dash-first", "number"):
                continue
            cases.append(
                case(
                    f"put-{wallet}-org-{name}",
                    "PUT",
                    f"/v1/wallets/{wallet}",
                    {"plan": "free", "org_id": value},
                    422,
                    "org_id",
                )
            )
    # a wallet does not move to another organisation: the body may only name the caller's own,
    # and for a caller of another organisation acme's wallet does not exist
    for org in ("globex", "ACME", "acme2"):
        cases.append(
            case(
                f"put-w1-into-another-org-{org}",
                "PUT",
                W,
                {"plan": "free", "org_id": org},
                422,
                "org_id",
            )
        )
    cases.append(
        case(
            "put-w1-another-org-and-a-plan-change",
            "PUT",
            W,
            {"plan": "starter", "org_id": "globex"},
            422,
            "org_id",
        )
    )
    for body in ({"plan": "starter"}, {"plan": "starter", "org_id": "globex"}):
        cases.append(
            case(
                f"put-w1-as-another-org-{len(body)}",
                "PUT",
                W,
                body,
                404,
                as_=GLOBEX,
            )
        )
    cases.append(
        case(
            "put-w2-org-with-an-unknown-plan",
            "PUT",
            "/v1/wallets/w2",
            {"plan": "gold", "org_id": "acme"},
            422,
            "plan",
        )
    )
    return cases


# -- the series -------------------------------------------------------------------------------

BAD_DAYS = {
    "month-13": "2026-13-01",
    "february-30": "2026-02-30",
    "february-29-not-leap": "2026-02-29",
    "short-month-and-day": "2026-1-5",
    "short-day": "2026-01-5",
    "no-dashes": "20260105",
    "slashes": "2026/01/05",
    "datetime": "2026-01-05T00:00:00",
    "datetime-utc": "2026-01-05T00:00:00Z",
    "padded": " 2026-01-05",
    "empty": "",
    "words": "yesterday",
    "year-zero": "0000-01-01",
    "unix-time": "1767225600",
    "arabic-digits": "٢٠٢٦-٠١-٠٥",
}
BAD_MONTHS = {
    "month-13": "2026-13",
    "month-00": "2026-00",
    "short-month": "2026-1",
    "no-dash": "202601",
    "two-digit-year": "26-01",
    "empty": "",
    "words": "april",
    "slash": "2026/01",
    "padded": "2026-01 ",
}


def series_cases() -> list[Any]:
    cases = []
    for name, value in {"week": "week", "upper": "DAY", "empty": "", "plural": "days"}.items():
        cases.append(
            case(
                f"series-granularity-{name}",
                "GET",
                SERIES,
                None,
                422,
                "granularity",
                query=f"granularity={enc(value)}",
            )
        )
    cases.append(
        case(
            "series-granularity-twice",
            "GET",
            SERIES,
            None,
            422,
            "granularity",
            query="granularity=day&granularity=month",
        )
    )
    for name, value in {
        "user": "user",
        "upper": "Category",
        "empty": "",
        "plural": "members",
        "two": "category,feature",
        "member_id": "member_id",
    }.items():
        for granularity in ("day", "month"):
            cases.append(
                case(
                    f"series-{granularity}-group-by-{name}",
                    "GET",
                    SERIES,
                    None,
                    422,
                    "group_by",
                    query=f"granularity={granularity}&group_by={enc(value)}",
                )
            )
    to_sample = {"month-13", "february-30", "short-month-and-day", "empty", "datetime"}
    for param in DAY_OR_MONTH_NAMES:
        for name, value in BAD_DAYS.items():
            if param == "to" and name not in to_sample:
                continue
            cases.append(
                case(
                    f"series-day-{param}-{name}",
                    "GET",
                    SERIES,
                    None,
                    422,
                    param,
                    query=f"{param}={enc(value)}",
                )
            )
        for name, value in BAD_MONTHS.items():
            if param == "to" and name not in ("month-13", "month-00", "short-month", "empty"):
                continue
            cases.append(
                case(
                    f"series-month-{param}-{name}",
                    "GET",
                    SERIES,
                    None,
                    422,
                    param,
                    query=f"granularity=month&{param}={enc(value)}",
                )
            )
        # a month where a day is wanted, and a day where a month is
        cases.append(
            case(
                f"series-day-{param}-given-a-month",
                "GET",
                SERIES,
                None,
                422,
                param,
                query=f"{param}=2026-04",
            )
        )
        cases.append(
            case(
                f"series-month-{param}-given-a-day",
                "GET",
                SERIES,
                None,
                422,
                param,
                query=f"granularity=month&{param}=2026-04-01",
            )
        )
        cases.append(
            case(
                f"series-month-{param}-non-ascii-digits",
                "GET",
                SERIES,
                None,
                422,
                param,
                query=f"granularity=month&{param}={enc('٢٠٢٦-04')}",
            )
        )
    # ranges: at most 90 days or 24 months, and from not after to
    for name, query in {
        "91-days": "from=2026-01-12&to=2026-04-12",
        "91-days-to-today": "from=2026-01-12",
        "a-year-of-days": "from=2025-04-12&to=2026-04-12",
        "25-months": "granularity=month&from=2024-04&to=2026-04",
        "25-months-to-this-month": "granularity=month&from=2024-04",
        "from-after-to-day": "from=2026-04-02&to=2026-04-01",
        "from-after-today": "from=2026-04-13",
        "from-after-to-month": "granularity=month&from=2026-04&to=2026-03",
        "from-after-this-month": "granularity=month&from=2026-05",
    }.items():
        cases.append(case(f"series-range-{name}", "GET", SERIES, None, 422, "from", query=query))
    cases.append(
        case(
            "series-day-to-the-first-day-of-year-1",
            "GET",
            SERIES,
            None,
            422,
            ("from", "to"),
            query="to=0001-01-01",
        )
    )
    cases.append(
        case(
            "series-month-to-year-zero",
            "GET",
            SERIES,
            None,
            422,
            ("from", "to"),
            query="granularity=month&to=0000-01",
        )
    )
    for name, query, field in (
        ("page", "page=2", "page"),
        ("from-underscore", "from_=2026-04-01", "from_"),
        ("limit", "limit=10", "limit"),
        ("day", "day=2026-04-01", "day"),
        ("with-valid-ones", "granularity=day&group_by=model&foo=1", "foo"),
    ):
        cases.append(case(f"series-unknown-{name}", "GET", SERIES, None, 422, field, query=query))
    return cases


# -- the summary -------------------------------------------------------------------------------


def summary_cases() -> list[Any]:
    return [
        case(f"summary-unknown-{field}", "GET", SUMMARY, None, 422, field, query=query)
        for field, query in (
            ("from", "from=2026-04"),
            ("group_by", "group_by=model"),
            ("period", "period=2026-04"),
            ("limit", "limit=1"),
        )
    ]


# -- the activity log and the CSV export --------------------------------------------------------

BAD_NAMES = {
    "equals-first": "=cmd",
    "plus-first": "+x",
    "at-first": "@x",
    "dash-first": "-x",
    "underscore-first": "_x",
    "space": "a b",
    "hash": "chat#1",
    "pipe": "chat|x",
    "too-long": "a" * 65,
    "empty": "",
    "non-ascii": "çhat",
}


# The CSV export validates with the log's model (but for its limit): a sample of each table.
CSV_SAMPLE = {
    "month-13",
    "february-30",
    "short-month-and-day",
    "month",
    "unix-time",
    "upper",
    "two",
    "equals-first",
    "hash",
    "too-long",
    "garbage",
    "day-rollup-key",
    "entry-prefix-not-a-seq",
    "page",
    "from",
}


def pick(route: str, table: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in table.items() if route == "log" or k in CSV_SAMPLE]


def list_cases() -> list[Any]:
    cases = []
    for route, path in LISTS.items():
        for name, value in pick(route, BAD_DAYS):
            cases.append(
                case(
                    f"{route}-day-{name}",
                    "GET",
                    path,
                    None,
                    422,
                    "day",
                    query=f"day={enc(value)}",
                )
            )
        for name, value in pick(route, {"month": "2026-04", "zero": "0"}):
            cases.append(
                case(
                    f"{route}-day-{name}",
                    "GET",
                    path,
                    None,
                    422,
                    "day",
                    query=f"day={enc(value)}",
                )
            )
        types = {
            "upper": "Charge",
            "refund": "refund",
            "empty": "",
            "plural": "charges",
            "two": "charge,grant",
            "usage": "usage",
        }
        for name, value in pick(route, types):
            cases.append(
                case(
                    f"{route}-type-{name}",
                    "GET",
                    path,
                    None,
                    422,
                    "type",
                    query=f"type={enc(value)}",
                )
            )
        for field in ("member_id", "feature"):
            for name, value in pick(route, BAD_NAMES):
                cases.append(
                    case(
                        f"{route}-{field}-{name}",
                        "GET",
                        path,
                        None,
                        422,
                        field,
                        query=f"{field}={enc(value)}",
                    )
                )
        biggest = 1000 if route == "csv" else 100
        for name, value in {
            "zero": "0",
            "over-the-most": str(biggest + 1),
            "negative": "-1",
            "fraction": "1.5",
            "words": "ten",
            "empty": "",
        }.items():
            cases.append(
                case(
                    f"{route}-limit-{name}",
                    "GET",
                    path,
                    None,
                    422,
                    "limit",
                    query=f"limit={enc(value)}",
                )
            )
        for name, value in pick(route, BAD_CURSORS):
            cases.append(
                case(
                    f"{route}-cursor-{name}",
                    "GET",
                    path,
                    None,
                    422,
                    "cursor",
                    query=f"cursor={enc(value)}",
                )
            )
            if route == "log" and name in ("garbage", "day-rollup-key", "too-long"):
                cases.append(
                    case(
                        f"{route}-cursor-{name}-with-filters",
                        "GET",
                        path,
                        None,
                        422,
                        "cursor",
                        query=f"day=2026-04-02&type=charge&cursor={enc(value)}",
                    )
                )
        unknown = {
            "page": ("page=2", "page"),
            "from": ("from=2026-04-01", "from"),
            "granularity": ("granularity=day", "granularity"),
            "member": ("member=ana", "member"),
            "with-valid-ones": ("day=2026-04-02&type=charge&status=posted", "status"),
        }
        for name, (query, field) in pick(route, unknown):
            cases.append(
                case(f"{route}-unknown-{name}", "GET", path, None, 422, field, query=query)
            )
        # several problems at once: each is named
        cases.append(
            case(
                f"{route}-two-bad-filters",
                "GET",
                path,
                None,
                422,
                ("day", "type"),
                query="day=2026-02-30&type=refund",
            )
        )
    return cases


# -- organisation usage ------------------------------------------------------------------------


# ``from`` and ``to`` are read by the same check: every bad month on ``from``, a sample on ``to``
# (as for the series).
ORG_TO_SAMPLE = {"month-13", "month-00", "short-month", "empty", "a-day"}


def org_cases() -> list[Any]:
    cases = []
    for param in DAY_OR_MONTH_NAMES:
        for name, value in {**BAD_MONTHS, "a-day": "2026-04-01"}.items():
            if param == "to" and name not in ORG_TO_SAMPLE:
                continue
            cases.append(
                case(
                    f"org-{param}-{name}",
                    "GET",
                    ORG,
                    None,
                    422,
                    param,
                    query=f"{param}={enc(value)}",
                )
            )
        cases.append(
            case(
                f"org-{param}-non-ascii-digits",
                "GET",
                ORG,
                None,
                422,
                param,
                query=f"{param}={enc('２０２６-04')}",
            )
        )
    for name, query in {
        "13-months": "from=2025-04&to=2026-04",
        "13-months-to-this-month": "from=2025-04",
        "from-after-to": "from=2026-04&to=2026-03",
        "from-after-this-month": "from=2026-05",
    }.items():
        cases.append(case(f"org-range-{name}", "GET", ORG, None, 422, "from", query=query))
    for name, query, field in (
        ("granularity", "granularity=month", "granularity"),
        ("group_by", "group_by=member", "group_by"),
        ("day", "day=2026-04-01", "day"),
        ("limit", "limit=10", "limit"),
    ):
        cases.append(case(f"org-unknown-{name}", "GET", ORG, None, 422, field, query=query))
    return cases


def unknown_route_cases() -> list[Any]:
    routes = [
        ("POST", SERIES),
        ("PUT", SERIES),
        ("DELETE", SERIES),
        ("GET", f"{SERIES}/"),
        ("POST", SUMMARY),
        ("GET", f"{SUMMARY}/x"),
        ("GET", f"{W}/usage/series"),
        ("POST", CSV),
        ("DELETE", LOG),
        ("GET", f"{W}/transactions.CSV"),
        ("GET", f"{W}/transactions.json"),
        ("GET", "/v1/orgs"),
        ("GET", "/v1/orgs/acme"),
        ("PUT", "/v1/orgs/acme"),
        ("POST", ORG),
        ("GET", f"{ORG}/"),
        ("GET", "/v1/orgs/acme/usage/summary"),
        ("GET", "/v1/orgs/acme/wallets"),
    ]
    return [
        case(f"unknown-route-{method}-{path}", method, path, None, 404, code="not-found")
        for method, path in routes
    ]


CASES = [
    *id_cases(),
    *put_org_cases(),
    *series_cases(),
    *summary_cases(),
    *list_cases(),
    *org_cases(),
    *unknown_route_cases(),
]


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(api: Api) -> Api:
    """The conftest's caller, as an owner of acme (w1's organisation) unless told otherwise."""
    return functools.partial(api, as_=ACME)


@pytest.fixture
def now() -> Iterator[None]:
    with frozen_clock(NOW):
        yield


def reports(api: Api) -> list[Any]:
    """What w1's reports show (compared before and after every case)."""
    return [
        api("GET", "/v1/wallets/w1"),
        api("GET", SUMMARY),
        api("GET", SERIES, query="group_by=member"),
        api("GET", LOG),
        api("GET", ORG),
    ]


@pytest.fixture(scope="module")
def world(
    module_table: str, api: Api, table_items: Any, project_ledger: Callable[[], None]
) -> dict[str, Any]:
    """The wallets of the module doc, what w1's reports and a table scan show after the setup."""

    def call(method: str, path: str, body: Any, status: int) -> Any:
        got, _, out = api(method, path, body)
        assert got == status, out
        return out

    with frozen_clock(datetime(2026, 4, 1, 9, 0, tzinfo=UTC)) as moment:
        call("PUT", W, {"plan": "free", "org_id": "acme"}, 201)
        call("PUT", "/v1/wallets/w2", {"plan": "free"}, 201)
        moment.set(datetime(2026, 4, 2, 10, 0, tzinfo=UTC))
        usage = [{"meter": "input_tokens", "model": "gpt-4o", "quantity": 10000}]
        call("POST", f"{W}/charges", {"feature": "chat", "member_id": "ana", "usage": usage}, 201)
        call("POST", f"{W}/charges", {"feature": "agent", "credits": "2"}, 201)
        held = call("POST", f"{W}/reservations", {"feature": "chat", "credits": "3"}, 201)
        call("POST", f"{W}/reservations/{held['reservation_id']}/release", None, 200)
        call("POST", f"{W}/adjustments", {"credits": "-1", "reason": "setup"}, 201)
        project_ledger()
        moment.set(NOW)
        shown = reports(api)
    assert [status for status, _, _ in shown] == [200] * 5
    assert shown[1][2]["used"] == "3"  # 1 (gpt-4o) + 2
    assert len(shown[3][2]["items"]) == 5
    return {"reports": shown, "items": table_items()}


@pytest.mark.usefixtures("now")
@pytest.mark.parametrize(("request_", "expect"), CASES)
def test_bad_input_is_refused_and_writes_nothing(
    api: Api,
    table_items: Any,
    world: dict[str, Any],
    request_: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    response = api(
        request_["method"],
        request_["path"],
        request_["body"],
        request_["headers"] or {},
        request_["query"],
        **sent_as(request_),
    )
    check_problem(response, expect)
    # Nothing written: the table holds the same items, byte for byte.
    assert table_items() == world["items"]


@pytest.mark.usefixtures("now")
def test_the_reports_read_the_same_after_every_case(
    api: Api, table_items: Any, world: dict[str, Any]
) -> None:
    assert reports(api) == world["reports"]
    assert table_items() == world["items"]
