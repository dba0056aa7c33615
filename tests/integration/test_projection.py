"""The ledger projected from the table's stream (docs/domain.md invariant 2;
the transactions routes of docs/api.md).

Every request goes through the real HTTP handler; the stream is fed to the real projector
handler by the stream pump.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers import ok

pytestmark = pytest.mark.integration


def _wallet(api: Any, plan: str = "free", allowance: str | None = None) -> str:
    wid = f"proj-{uuid.uuid4().hex[:10]}"
    body = {"plan": plan} if allowance is None else {"plan": plan, "allowance": allowance}
    ok(api("PUT", f"/v1/wallets/{wid}", body), 201)
    return wid


def _history(api: Any, wid: str) -> dict[str, Any]:
    """A little of everything, through the API. Returns what each step answered."""
    base = f"/v1/wallets/{wid}"
    out: dict[str, Any] = {}
    held = ok(
        api(
            "POST",
            f"{base}/reservations",
            {"feature": "chat", "member_id": "alice", "credits": "5"},
        ),
        201,
    )
    out["commit"] = ok(
        api("POST", f"{base}/reservations/{held['reservation_id']}/commit", {"credits": "7.5"}), 200
    )
    held = ok(
        api(
            "POST",
            f"{base}/reservations",
            {
                "feature": "image",
                "member_id": "bob",
                "usage": [{"meter": "image_hd", "quantity": 1}],
            },
        ),
        201,
    )
    out["release"] = ok(api("POST", f"{base}/reservations/{held['reservation_id']}/release"), 200)
    out["charge"] = ok(
        api(
            "POST",
            f"{base}/charges",
            {"feature": "search", "member_id": "carol", "credits": "0.25"},
        ),
        201,
    )
    out["grant"] = ok(api("POST", f"{base}/grants", {"credits": "10", "source": "promo"}), 201)
    held = ok(api("POST", f"{base}/reservations", {"feature": "agent", "credits": "4"}), 201)
    out["commit_less"] = ok(
        api(
            "POST", f"{base}/reservations/{held['reservation_id']}/commit", {"credits": "1.000001"}
        ),
        200,
    )
    return out


def test_every_posting_is_projected_once_with_its_running_balance(api: Any, ledger: Any) -> None:
    wid = _wallet(api)
    out = _history(api, wid)

    ledger.drain()
    entries = ledger.check(wid)

    got = [
        (e["transaction_id"], e["type"], e["credits"], e["status"], e["balance_after"])
        for e in entries
    ]
    assert got[0][1:] == ("grant", Decimal(50), "posted", Decimal(50))
    assert got[1:] == [
        (
            out["commit"]["reservation_id"],
            "reservation",
            Decimal("-7.5"),
            "committed",
            Decimal("42.5"),
        ),
        (out["release"]["reservation_id"], "reservation", Decimal(0), "released", Decimal("42.5")),
        (out["charge"]["charge_id"], "charge", Decimal("-0.25"), "posted", Decimal("42.25")),
        (out["grant"]["grant_id"], "grant", Decimal(10), "posted", Decimal("52.25")),
        (
            out["commit_less"]["reservation_id"],
            "reservation",
            Decimal("-1.000001"),
            "committed",
            Decimal("51.249999"),
        ),
    ]
    wallet = ok(api("GET", f"/v1/wallets/{wid}"), 200)
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (
        "51.249999",
        "0",
        "51.249999",
    )


def test_replaying_stream_records_changes_nothing(api: Any, ledger: Any) -> None:
    wid = _wallet(api)
    _history(api, wid)
    ledger.drain()
    before = ledger.items()
    assert len(ledger.entries(wid)) == 6

    # A batch delivered again (Lambda retries whole batches), then again out of order.
    assert ledger.replay() == {"batchItemFailures": []}
    assert ledger.replay(list(reversed(ledger.records))) == {"batchItemFailures": []}
    ledger.drain()

    assert ledger.items() == before
    ledger.check(wid)


def test_transactions_are_listed_newest_first_across_cursor_pages(api: Any, ledger: Any) -> None:
    wid = _wallet(api, "enterprise", "100")
    for n in range(1, 12):
        ok(api("POST", f"/v1/wallets/{wid}/charges", {"feature": f"f{n}", "credits": str(n)}), 201)
    ledger.drain()
    expected = list(reversed(ledger.check(wid)))
    assert len(expected) == 12

    pages: list[list[dict[str, Any]]] = []
    query: dict[str, str] = {"limit": "5"}
    while True:
        body = ok(api("GET", f"/v1/wallets/{wid}/transactions", query=query), 200)
        pages.append(body["items"])
        assert len(body["items"]) <= 5
        if body["next_cursor"] is None:
            break
        assert len(pages) < 10, "pagination does not end"
        query = {"limit": "5", "cursor": body["next_cursor"]}

    listed = [item for page in pages for item in page]
    assert [len(p) for p in pages][:3] == [5, 5, 2]
    assert [i["transaction_id"] for i in listed] == [e["transaction_id"] for e in expected]
    assert [i["balance_after"] for i in listed] == [str(e["balance_after"]) for e in expected]
    assert listed[0]["credits"] == "-11" and listed[0]["feature"] == "f11"
    assert listed[-1]["type"] == "grant" and listed[-1]["credits"] == "100"
    assert [i["at"] for i in listed] == sorted((i["at"] for i in listed), reverse=True)

    # One page of everything agrees with the pages.
    body = ok(api("GET", f"/v1/wallets/{wid}/transactions", query={"limit": "100"}), 200)
    assert body["items"] == listed and body["next_cursor"] is None

    # A cursor this list never returned is a 422, not a 5xx.
    code, problem = api(
        "GET", f"/v1/wallets/{wid}/transactions", query={"cursor": "bm90LWEtY3Vyc29y"}
    )
    assert code == 422, problem


def test_released_and_committed_reservations_in_the_transactions_list(
    api: Any, ledger: Any
) -> None:
    wid = _wallet(api)
    out = _history(api, wid)
    ledger.drain()

    body = ok(api("GET", f"/v1/wallets/{wid}/transactions"), 200)
    by_id = {i["transaction_id"]: i for i in body["items"]}
    assert len(by_id) == len(body["items"]) == 6

    released = by_id[out["release"]["reservation_id"]]
    assert released["status"] == "released"
    assert released["credits"] == "0"
    assert released["type"] == "reservation"
    assert (released["feature"], released["member_id"]) == ("image", "bob")

    committed = by_id[out["commit"]["reservation_id"]]
    assert committed["status"] == "committed"
    assert committed["credits"] == "-7.5"
    assert (committed["feature"], committed["member_id"]) == ("chat", "alice")

    less = by_id[out["commit_less"]["reservation_id"]]
    assert (less["feature"], less["member_id"], less["credits"]) == ("agent", None, "-1.000001")

    charge = by_id[out["charge"]["charge_id"]]
    assert (charge["type"], charge["status"], charge["feature"], charge["member_id"]) == (
        "charge",
        "posted",
        "search",
        "carol",
    )
    grant = by_id[out["grant"]["grant_id"]]
    assert (grant["type"], grant["credits"], grant["feature"]) == ("grant", "10", None)
