"""devtools.smoke without a server: its URL and token rules, and that it catches a ledger that
does not add up or never arrives (a canned API stands in for the HTTP one)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devtools import smoke


class CannedApi(smoke.Api):
    """Answers from a table of (method, path prefix) -> (status, body); ``ledger`` is what the
    transactions route shows."""

    def __init__(self, ledger: list[dict[str, Any]], balance: str = "498.3") -> None:
        super().__init__("http://api.test/v1", "t", "t")
        self.ledger = ledger
        self.balance = balance
        self.calls: list[str] = []

    def call(
        self, method: str, path: str, body: Any = None, *, meter: bool = False
    ) -> tuple[int, Any]:
        self.calls.append(f"{method} {path}")
        if path.endswith("/transactions?limit=50"):
            return 200, {"items": self.ledger, "next_cursor": None}
        if method == "PUT":
            return 201, {"balance": "500", "held": "0", "available": "500"}
        if method == "GET":
            return 200, {"balance": self.balance, "held": "0", "available": self.balance}
        if path.endswith("/reservations"):
            rid = f"rsv_{len(self.calls)}"
            return 201, {"reservation_id": rid, "status": "held", "credits": body["credits"]}
        if path.endswith("/commit"):
            return 200, {"status": "committed", "charged": "1.2", "released": "0.8"}
        if path.endswith("/release"):
            return 200, {"status": "released", "released": "1"}
        return 201, {"charge_id": "chg_1", "charged": "0.5"}


def entry(tid: str, status: str, credits: str, balance_after: str) -> dict[str, Any]:
    return {
        "transaction_id": tid,
        "status": status,
        "credits": credits,
        "balance_after": balance_after,
    }


GOOD_LEDGER = [
    entry("chg_1", "posted", "-0.5", "498.3"),
    entry("rsv_4", "released", "0", "498.8"),
    entry("rsv_2", "committed", "-1.2", "498.8"),
    entry("grt_1", "posted", "500", "500"),
]


def run(api: CannedApi, wait: float = 5.0) -> str:
    return smoke.Smoke(api, "smoke-w", wait_seconds=wait, say=lambda line: None).run()


def test_a_ledger_that_adds_up_passes() -> None:
    api = CannedApi(GOOD_LEDGER)
    assert "balance 500 -> 498.3" in run(api)
    assert "POST /wallets/smoke-w/reservations/rsv_2/commit" in api.calls


def test_a_ledger_that_does_not_sum_to_the_balance_fails() -> None:
    ledger = [*GOOD_LEDGER[:3], entry("grt_1", "posted", "499", "500")]
    with pytest.raises(smoke.SmokeFailure, match=r"sum to 497\.3, the balance is 498\.3"):
        run(CannedApi(ledger))


def test_a_wallet_balance_that_is_off_fails() -> None:
    with pytest.raises(smoke.SmokeFailure, match=r"balance 498\.2, expected 498\.3"):
        run(CannedApi(GOOD_LEDGER, balance="498.2"))


def test_a_ledger_that_never_arrives_fails_by_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(smoke.SmokeFailure, match="still lacks chg_1, rsv_2, rsv_4"):
        run(CannedApi(GOOD_LEDGER[3:]), wait=0.5)
    assert time.monotonic() - started < 5


def test_a_hold_left_open_by_a_failure_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    api = CannedApi(GOOD_LEDGER)

    def no_commit(self: smoke.Smoke) -> str:
        self.reserve(smoke.HELD)
        raise smoke.SmokeFailure("commit refused")

    monkeypatch.setattr(smoke.Smoke, "reserve_and_commit", no_commit)
    with pytest.raises(smoke.SmokeFailure, match="commit refused"):
        run(api)
    assert api.calls[-1] == "POST /wallets/smoke-w/reservations/rsv_2/release"


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000/v1"),
        (
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/v1",
        ),
        ("https://api.example.com/v1/", "https://api.example.com/v1"),
    ],
)
def test_base_url(given: str, base: str) -> None:
    assert smoke.base_url(given) == base


def test_a_remote_api_needs_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOKEN", raising=False)
    assert smoke.main(["--api", "https://api.example.com", "--quiet"]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("smoke FAILED") and "TOKEN is required" in line


def test_meter_token_defaults_to_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "admin-token")
    monkeypatch.delenv("METER_TOKEN", raising=False)
    assert smoke.tokens("https://api.example.com", "o") == ("admin-token", "admin-token")
    monkeypatch.setenv("METER_TOKEN", "meter-token")
    assert smoke.tokens("https://api.example.com", "o") == ("admin-token", "meter-token")


def test_bad_arguments_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        smoke.main(["--wait", "soon"])
    assert exited.value.code == 1
    assert "smoke FAILED" in capsys.readouterr().err
