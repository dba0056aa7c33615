"""BYOK and bypass pricing on the hot path, through the real metering handler.

A member whose own provider key is active (the wallet's ``ky`` set, kept by the BYOK module —
set directly here; ``test_byok_metering.py`` goes through the BYOK API) pays no credits for
AI tokens, but still pays runtime, tasks and other meters; the activity log shows every line.
A wallet in bypass mode (self-hosted) records everything and charges nothing: no balance,
limit or budget moves. Each mode is checked in the write's condition: a process that guessed
the mode wrong is refused and tries again the right way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest

from credit_meter.metering import pricing_modes, service
from credit_meter.storage import wallet_record

WID = "w-modes"
TOKENS = [
    {"meter": "input_tokens", "model": "claude-sonnet", "quantity": 20000},
    {"meter": "output_tokens", "model": "claude-sonnet", "quantity": 5000},
]
TASK = [{"meter": "task_completed", "quantity": 2}]  # 0.25 each: 0.5 credits
COMPUTE = [{"meter": "compute_minute", "quantity": 3}]  # 1 each: 3 credits


@pytest.fixture(autouse=True)
def fresh_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from a process that has seen no wallet (the hints are only guesses)."""
    monkeypatch.setattr(pricing_modes, "mode_hints", pricing_modes.ModeHints())
    monkeypatch.setattr(pricing_modes, "budget_hints", pricing_modes.BudgetHints())


def _table() -> Any:
    import os

    return boto3.resource("dynamodb", region_name="us-east-1").Table(os.environ["TABLE_NAME"])


def _set_byok(wallet_id: str, *members: str) -> None:
    """What the BYOK module's fan-out leaves on a wallet: the members with an active key."""
    key = wallet_record.key(wallet_id)
    if members:
        _table().update_item(
            Key=key, UpdateExpression="SET ky = :m", ExpressionAttributeValues={":m": set(members)}
        )
    else:
        _table().update_item(Key=key, UpdateExpression="REMOVE ky")


def _wallet(api: Any, wallet_id: str = WID) -> dict[str, Any]:
    status, _, body = api("GET", f"/v1/wallets/{wallet_id}")
    assert status == 200, body
    return body


def _log(api: Any, project_ledger: Any, wallet_id: str = WID) -> list[dict[str, Any]]:
    project_ledger()
    status, _, body = api("GET", f"/v1/wallets/{wallet_id}/transactions", query={"limit": "50"})
    assert status == 200, body
    return [e for e in body["items"] if e["type"] in ("charge", "reservation")][::-1]


@pytest.fixture
def wallet(api: Any, fresh_table: str) -> str:
    status, _, body = api("PUT", f"/v1/wallets/{WID}", {"plan": "pro"})
    assert status == 201, body
    return WID


def test_price_list(api: Any, wallet: str) -> None:
    # The figures the other tests rely on, at list price.
    status, _, body = api("POST", f"/v1/wallets/{wallet}/quote", {"usage": TOKENS + TASK})
    assert status == 200, body
    assert Decimal(body["credits"]) == Decimal("0.5") + _token_price(api, wallet)


def _token_price(api: Any, wallet_id: str) -> Decimal:
    status, _, body = api("POST", f"/v1/wallets/{wallet_id}/quote", {"usage": TOKENS})
    assert status == 200
    price = Decimal(body["credits"])
    assert price > 0
    return price


def test_byok_member_pays_no_tokens_but_still_pays_other_meters(
    api: Any, wallet: str, project_ledger: Any
) -> None:
    _set_byok(wallet, "alice")
    before = _wallet(api)
    status, _, body = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": TOKENS + TASK, "feature": "chat", "member_id": "alice"},
    )
    assert status == 201, body
    assert Decimal(body["charged"]) == Decimal("0.5")  # the task only
    # bob has no key of his own: list price
    status, _, bob = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": TOKENS + TASK, "feature": "chat", "member_id": "bob"},
    )
    assert status == 201, bob
    assert Decimal(bob["charged"]) == Decimal("0.5") + _token_price(api, wallet)
    after = _wallet(api)
    spent = Decimal(before["balance"]) - Decimal(after["balance"])
    assert spent == Decimal("0.5") + Decimal(bob["charged"])
    alice_entry, bob_entry = _log(api, project_ledger)
    assert alice_entry["member_id"] == "alice" and alice_entry["billing"] == "byok"
    assert bob_entry["billing"] == "credits"
    # The activity log shows the AI usage, at 0 credits, and the token counts.
    lines = {x["operation"]: x for x in alice_entry["lines"]}
    assert Decimal(lines["input_tokens"]["cost"]) == 0
    assert Decimal(lines["input_tokens"]["unit_price"]) == 0
    assert Decimal(lines["input_tokens"]["quantity"]) == 20000
    assert Decimal(lines["task_completed"]["cost"]) == Decimal("0.5")
    assert Decimal(alice_entry["tokens"]["input"]) == 20000
    assert Decimal(alice_entry["credits"]) == Decimal("-0.5")


def test_byok_reservation_prices_its_commit_the_same_way(
    api: Any, wallet: str, project_ledger: Any
) -> None:
    _set_byok(wallet, "alice")
    status, _, held = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations",
        {"usage": TOKENS + COMPUTE, "feature": "agent", "member_id": "alice"},
    )
    assert status == 201, held
    assert Decimal(held["credits"]) == 3  # the compute minutes only
    rid = held["reservation_id"]
    assert rid.endswith("_k")
    # The key is removed before the commit: the action began under BYOK and ends so.
    _set_byok(wallet)
    status, _, done = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations/{rid}/commit",
        {"usage": [*TOKENS, {"meter": "compute_minute", "quantity": 2}]},
    )
    assert status == 200, done
    assert Decimal(done["charged"]) == 2
    (entry,) = _log(api, project_ledger)
    assert entry["billing"] == "byok" and Decimal(entry["credits"]) == -2


def test_a_forged_mode_mark_is_refused(api: Any, wallet: str, table_items: Any) -> None:
    status, _, held = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations",
        {"usage": TOKENS, "member_id": "bob", "feature": "chat"},
    )
    assert status == 201, held
    rid = held["reservation_id"]
    before = table_items(wallet)
    for forged in (f"{rid}_k", f"{rid}_x"):  # claim the hold was made under BYOK / bypass
        status, _, body = api(
            "POST", f"/v1/wallets/{wallet}/reservations/{forged}/commit", {"usage": TOKENS}
        )
        assert status == 404, body
        assert body["type"] == "/problems/reservation-not-found"
    assert table_items(wallet) == before
    status, _, done = api(
        "POST", f"/v1/wallets/{wallet}/reservations/{rid}/commit", {"usage": TOKENS}
    )
    assert status == 200 and Decimal(done["charged"]) == _token_price(api, wallet)


def test_a_stale_guess_is_corrected_by_the_condition(api: Any, wallet: str) -> None:
    price = _token_price(api, wallet)
    _set_byok(wallet, "alice")
    charge = {"usage": TOKENS, "member_id": "alice", "feature": "chat"}
    status, _, first = api("POST", f"/v1/wallets/{wallet}/charges", charge)
    assert (status, Decimal(first["charged"])) == (201, 0)  # guessed credits, refused, redone
    assert pricing_modes.mode_hints.guess(wallet, "alice") == "byok"
    _set_byok(wallet)  # the key is deleted: this process still guesses BYOK
    status, _, second = api("POST", f"/v1/wallets/{wallet}/charges", charge)
    assert (status, Decimal(second["charged"])) == (201, price)
    assert pricing_modes.mode_hints.guess(wallet, "alice") is None


def test_bypass_records_everything_and_charges_nothing(
    api: Any, wallet: str, project_ledger: Any
) -> None:
    status, _, body = api("PUT", f"/v1/wallets/{wallet}/bypass", {"enabled": True})
    assert status == 200, body
    assert body["bypass"] is True
    # A spending limit that is all used up, and an alert threshold: neither may fire.
    status, _, body = api(
        "PUT", f"/v1/wallets/{wallet}/limits", {"allowed_limit": "1", "alert_threshold": "1"}
    )
    assert status == 200, body
    before = _wallet(api)
    status, _, charged = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": TOKENS + COMPUTE, "feature": "agent", "member_id": "alice"},
    )
    assert (status, Decimal(charged["charged"])) == (201, 0), charged
    status, _, plain = api(
        "POST", f"/v1/wallets/{wallet}/charges", {"credits": "500", "feature": "x"}
    )
    assert (status, Decimal(plain["charged"])) == (201, 0), plain
    status, _, held = api(
        "POST", f"/v1/wallets/{wallet}/reservations", {"credits": "10000", "feature": "x"}
    )
    assert status == 201 and Decimal(held["credits"]) == 0, held
    assert held["reservation_id"].endswith("_x")
    # Turned off before the commit: the reservation keeps the mode it was made in.
    status, _, body = api("PUT", f"/v1/wallets/{wallet}/bypass", {"enabled": False})
    assert status == 200 and body["bypass"] is False
    status, _, done = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations/{held['reservation_id']}/commit",
        {"credits": "700"},
    )
    assert (status, Decimal(done["charged"])) == (200, 0), done
    after = _wallet(api)
    for field in ("balance", "available", "used", "held", "state"):
        assert after[field] == before[field], field
    assert after["limits"] == before["limits"]
    entries = _log(api, project_ledger)
    assert [e["billing"] for e in entries] == ["bypass"] * 3
    assert all(Decimal(e["credits"]) == 0 for e in entries)
    usage = {x["operation"]: Decimal(x["quantity"]) for x in entries[0]["lines"]}
    assert usage == {"input_tokens": 20000, "output_tokens": 5000, "compute_minute": 3}
    # Bypass off: the next charge pays again.
    status, _, paid = api(
        "POST", f"/v1/wallets/{wallet}/charges", {"credits": "0.5", "feature": "x"}
    )
    assert (status, Decimal(paid["charged"])) == (201, Decimal("0.5"))


def test_bypass_takes_nothing_from_a_wallet_in_debt(api: Any, wallet: str) -> None:
    status, _, body = api(
        "POST", f"/v1/wallets/{wallet}/adjustments", {"credits": "-100000", "reason": "test"}
    )
    assert status == 201, body
    status, _, body = api("POST", f"/v1/wallets/{wallet}/charges", {"credits": "1", "feature": "x"})
    assert status == 402, body
    status, _, body = api("PUT", f"/v1/wallets/{wallet}/bypass", {"enabled": True})
    assert status == 200
    status, _, body = api(
        "POST", f"/v1/wallets/{wallet}/charges", {"usage": TOKENS, "feature": "x"}
    )
    assert (status, Decimal(body["charged"])) == (201, 0), body


def test_byok_does_not_lift_a_cap_on_what_still_costs(api: Any, wallet: str) -> None:
    _set_byok(wallet, "alice")
    status, _, body = api("PUT", f"/v1/wallets/{wallet}/limits", {"allowed_limit": "1"})
    assert status == 200, body
    status, _, body = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": COMPUTE, "member_id": "alice", "feature": "x"},
    )
    assert status == 403 and body["type"] == "/problems/spending-limit-reached", body
    status, _, body = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": TOKENS, "member_id": "alice", "feature": "x"},
    )
    assert (status, Decimal(body["charged"])) == (201, 0), body


def test_bypass_needs_the_platform_scope_and_a_boolean(api: Any, wallet: str) -> None:
    from tests.principals import token

    status, _, body = api(
        "PUT", f"/v1/wallets/{wallet}/bypass", {"enabled": True}, as_=token("owner")
    )
    assert status == 403 and body["type"] == "/problems/forbidden", body
    for bad in ({"enabled": "yes"}, {}, {"enabled": True, "x": 1}):
        status, _, body = api("PUT", f"/v1/wallets/{wallet}/bypass", bad)
        assert status == 422, (bad, body)
    assert _wallet(api)["bypass"] is False


def test_an_expired_byok_hold_keeps_its_mode(api: Any, wallet: str, project_ledger: Any) -> None:
    import time

    from credit_meter.core import clock

    _set_byok(wallet, "alice")
    status, _, held = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations",
        {"usage": TOKENS + COMPUTE, "feature": "agent", "member_id": "alice"},
    )
    assert status == 201 and held["reservation_id"].endswith("_k"), held
    later = time.time() + 7200
    clock.set_clock(lambda: later)
    try:
        assert service.Metering().expire_holds(wallet) == 1
        status, _, body = api(
            "POST", f"/v1/wallets/{wallet}/reservations/{held['reservation_id']}/commit", {}
        )
    finally:
        clock.set_clock(None)
    assert status == 409 and body["type"] == "/problems/reservation-expired", body
    (entry,) = _log(api, project_ledger)
    assert (entry["transaction_id"], entry["status"], entry["billing"]) == (
        held["reservation_id"],
        "expired",
        "byok",
    )


def test_an_overspent_budget_refuses_nothing_free(api: Any, wallet: str) -> None:
    status, _, body = api("PUT", f"/v1/wallets/{wallet}/members/alice/budget", {"budget": "1"})
    assert status == 200, body
    # A commit may take a member past their budget (the work was done).
    status, _, held = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations",
        {"credits": "1", "feature": "x", "member_id": "alice"},
    )
    assert status == 201, held
    status, _, body = api(
        "POST",
        f"/v1/wallets/{wallet}/reservations/{held['reservation_id']}/commit",
        {"credits": "5"},
    )
    assert status == 200, body
    status, _, body = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"credits": "0.1", "feature": "x", "member_id": "alice"},
    )
    assert status == 403 and body["type"] == "/problems/member-budget-reached", body
    _set_byok(wallet, "alice")
    status, _, body = api(
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": TOKENS, "feature": "x", "member_id": "alice"},
    )
    assert (status, Decimal(body.get("charged", -1))) == (201, 0), body
    status, _, body = api(  # what still costs is still refused
        "POST",
        f"/v1/wallets/{wallet}/charges",
        {"usage": COMPUTE, "feature": "x", "member_id": "alice"},
    )
    assert status == 403 and body["type"] == "/problems/member-budget-reached", body
