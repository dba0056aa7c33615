"""A smoke test against a running Credit Meter API: ``python -m devtools.smoke`` (``make smoke``).

It makes a new, uniquely named wallet and meters a few credits on it through the HTTP API, as a
product backend would, then checks that the numbers add up:

1. ``PUT /v1/wallets/{id}`` on the ``starter`` plan (``--plan``): 201 and its balance;
2. reserve 2 credits and commit 1.2 (1.2 charged, 0.8 released);
3. reserve 1 credit and release it (1 released);
4. charge 0.5;
5. ``GET /v1/wallets/{id}``: balance down by exactly 1.7, nothing held, available = balance;
6. ``GET /v1/wallets/{id}/transactions``, polled until the ledger projector (fed by the table's
   stream, so a moment behind) shows the three entries, or ``--wait`` seconds pass: each entry's
   amount and status, the entries summing to the balance and the newest ``balance_after``
   equal to it.

A hold still open when a step fails is released before it exits. What stays behind: the wallet
and its ledger (no route deletes a wallet), and its usage in the organisation's reports (the
feature is ``smoke``, so it can be told apart).

Configuration, from the environment (so that tokens stay off command lines) or flags:

* ``API`` / ``--api``: the API's base URL (the stack's ``ApiUrl`` output, or
  ``http://127.0.0.1:3000`` for ``make run``); a trailing ``/v1`` is accepted.
* ``TOKEN``: a bearer token that may create a wallet (an ``owner`` or ``admin`` role, or the
  ``credits:admin`` scope) and read it; ``METER_TOKEN``: one with ``credits:meter`` for
  reserve, commit, release and charge. Without ``METER_TOKEN``, ``TOKEN`` does both (a token
  may carry a role and a scope together, docs/access.md). Without either and with a loopback
  API, one development token (admin and ``credits:meter``, organisation ``--org``) is minted
  with :mod:`devtools.dev_tokens`, as ``make token`` does for ``make run``.

Exit status 0 when every check passed, 1 otherwise; the last line on stdout is a one-line
summary, the steps go to stderr. Only the standard library is used for HTTP, so it runs
wherever the repository's virtualenv does.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
FEATURE = "smoke"
HELD, COMMITTED = Decimal("2"), Decimal("1.2")
RELEASED_HOLD, CHARGED = Decimal("1"), Decimal("0.5")
# Short, so that a hold the clean-up could not release is freed by the hold sweeper soon.
HOLD_SECONDS = 120


class SmokeFailure(Exception):
    """A step that did not give the expected answer; the message says which and how."""


@dataclass
class Api:
    """A tiny JSON client: ``base`` ends in ``/v1``; ``meter_token`` is used for metering."""

    base: str
    token: str
    meter_token: str
    timeout: float = 15.0

    def call(
        self, method: str, path: str, body: Any = None, *, meter: bool = False
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self.meter_token if meter else self.token}",
            "Accept": "application/json",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _json(err.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise SmokeFailure(f"{method} {path}: cannot reach the API ({reason})") from None

    def expect(
        self, status: int, method: str, path: str, body: Any = None, *, meter: bool = False
    ) -> dict[str, Any]:
        got, answer = self.call(method, path, body, meter=meter)
        if got != status or not isinstance(answer, dict):
            raise SmokeFailure(f"{method} {path}: {got} {_problem(answer)} (expected {status})")
        return answer


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:200].decode("utf-8", "replace")


def _problem(answer: Any) -> str:
    """The gist of an error answer: a problem's type and detail, or API Gateway's message."""
    if isinstance(answer, dict):
        parts = [str(answer.get(k)) for k in ("type", "detail", "message") if answer.get(k)]
        return " ".join(parts) or json.dumps(answer)[:200]
    return str(answer)[:200]


def amount(answer: dict[str, Any], name: str) -> Decimal:
    try:
        return Decimal(str(answer[name]))
    except (KeyError, InvalidOperation):
        raise SmokeFailure(f"no amount {name!r} in {json.dumps(answer)[:200]}") from None


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


@dataclass
class Smoke:
    """One run: the wallet it made, the holds still open, what it saw."""

    api: Api
    wallet_id: str
    plan: str = "starter"
    wait_seconds: float = 30.0
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    open_holds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/wallets/{quote(self.wallet_id, safe='')}"

    def run(self) -> str:
        """Every step, the clean-up whatever happens; the summary, or :class:`SmokeFailure`."""
        try:
            start = self.create()
            committed_id = self.reserve_and_commit()
            released_id = self.reserve_and_release()
            charge_id = self.charge()
            balance = self.check_wallet(start)
            waited = self.check_ledger(balance, committed_id, released_id, charge_id)
        finally:
            self.clean_up()
        return (
            f"wallet {self.wallet_id}: balance {start} -> {balance} after committing {COMMITTED}"
            f" of {HELD}, releasing {RELEASED_HOLD} and charging {CHARGED}; ledger agrees"
            f" (projected within {waited:.1f} s)"
        )

    def create(self) -> Decimal:
        wallet = self.api.expect(201, "PUT", self.path, {"plan": self.plan})
        balance = amount(wallet, "balance")
        check(amount(wallet, "held") == 0, f"a new wallet holds {wallet.get('held')}")
        check(balance >= HELD + RELEASED_HOLD, f"plan {self.plan!r} gives only {balance} credits")
        self.say(f"created wallet {self.wallet_id} ({self.plan}): balance {balance}")
        return balance

    def reserve(self, credits: Decimal) -> str:
        body = {"feature": FEATURE, "credits": str(credits), "expires_in_seconds": HOLD_SECONDS}
        hold = self.api.expect(201, "POST", f"{self.path}/reservations", body, meter=True)
        reservation_id = str(hold.get("reservation_id") or "")
        check(bool(reservation_id), f"no reservation_id in {hold}")
        self.open_holds.append(reservation_id)
        check(hold.get("status") == "held", f"reservation {reservation_id}: {hold}")
        check(amount(hold, "credits") == credits, f"held {hold.get('credits')}, not {credits}")
        return reservation_id

    def end(self, reservation_id: str, action: str, body: Any = None) -> dict[str, Any]:
        path = f"{self.path}/reservations/{quote(reservation_id, safe='')}/{action}"
        answer = self.api.expect(200, "POST", path, body, meter=True)
        self.open_holds.remove(reservation_id)
        return answer

    def reserve_and_commit(self) -> str:
        reservation_id = self.reserve(HELD)
        done = self.end(reservation_id, "commit", {"credits": str(COMMITTED)})
        check(done.get("status") == "committed", f"commit answered {done}")
        check(amount(done, "charged") == COMMITTED, f"commit charged {done.get('charged')}")
        check(amount(done, "released") == HELD - COMMITTED, f"commit: {done}")
        self.say(f"reserved {HELD}, committed {COMMITTED} ({reservation_id})")
        return reservation_id

    def reserve_and_release(self) -> str:
        reservation_id = self.reserve(RELEASED_HOLD)
        done = self.end(reservation_id, "release")
        check(done.get("status") == "released", f"release answered {done}")
        check(amount(done, "released") == RELEASED_HOLD, f"release: {done}")
        self.say(f"reserved {RELEASED_HOLD}, released it ({reservation_id})")
        return reservation_id

    def charge(self) -> str:
        body = {"feature": FEATURE, "credits": str(CHARGED)}
        done = self.api.expect(201, "POST", f"{self.path}/charges", body, meter=True)
        check(amount(done, "charged") == CHARGED, f"charge answered {done}")
        charge_id = str(done.get("charge_id") or "")
        check(bool(charge_id), f"no charge_id in {done}")
        self.say(f"charged {CHARGED} ({charge_id})")
        return charge_id

    def check_wallet(self, start: Decimal) -> Decimal:
        wallet = self.api.expect(200, "GET", self.path)
        balance, held = amount(wallet, "balance"), amount(wallet, "held")
        expected = start - COMMITTED - CHARGED
        check(balance == expected, f"balance {balance}, expected {expected}")
        check(held == 0, f"{held} credits still held")
        check(amount(wallet, "available") == balance - held, f"available: {wallet}")
        self.say(f"wallet: balance {balance}, held {held}")
        return balance

    def ledger(self) -> list[dict[str, Any]]:
        """Every entry of the wallet's ledger, newest first (a new wallet has a handful)."""
        entries: list[dict[str, Any]] = []
        query = "?limit=50"
        for _ in range(10):
            page = self.api.expect(200, "GET", f"{self.path}/transactions{query}")
            entries.extend(page.get("items") or [])
            if not page.get("next_cursor"):
                return entries
            query = f"?limit=50&cursor={quote(str(page['next_cursor']), safe='')}"
        raise SmokeFailure(f"the ledger of {self.wallet_id} has over 500 entries")

    def check_ledger(
        self, balance: Decimal, committed_id: str, released_id: str, charge_id: str
    ) -> float:
        """Waits (bounded) for the projector; the seconds waited."""
        expected = {
            committed_id: ("committed", -COMMITTED),
            released_id: ("released", Decimal(0)),
            charge_id: ("posted", -CHARGED),
        }
        started = time.monotonic()
        deadline, pause = started + self.wait_seconds, 0.1
        while True:
            entries = self.ledger()
            seen = {
                str(e.get("transaction_id")): (e.get("status"), amount(e, "credits"))
                for e in entries
            }
            if all(seen.get(key) == value for key, value in expected.items()):
                break
            if time.monotonic() + pause > deadline:
                missing = sorted(k for k, v in expected.items() if seen.get(k) != v)
                raise SmokeFailure(
                    f"after {self.wait_seconds:g} s the ledger still lacks {', '.join(missing)}"
                    " (is the ledger projector running? see docs/operations.md)"
                )
            time.sleep(pause)  # polling the projector's output, with a bounded back-off
            pause = min(pause * 2, 2.0)
        total = sum((amount(e, "credits") for e in entries), Decimal(0))
        check(total == balance, f"the ledger's entries sum to {total}, the balance is {balance}")
        newest = amount(entries[0], "balance_after")
        check(newest == balance, f"the newest entry's balance_after is {newest}, not {balance}")
        self.say(f"ledger: {len(entries)} entries summing to {total}")
        return time.monotonic() - started

    def clean_up(self) -> None:
        for reservation_id in list(self.open_holds):
            path = f"{self.path}/reservations/{quote(reservation_id, safe='')}/release"
            try:
                status, answer = self.api.call("POST", path, meter=True)
            except SmokeFailure as err:
                status, answer = 0, str(err)
            if status == 200:
                self.open_holds.remove(reservation_id)
                self.say(f"clean-up: released {reservation_id}")
            else:
                self.notes.append(f"hold {reservation_id} left open ({status}); it expires")
                self.say(f"clean-up: could not release {reservation_id}: {_problem(answer)}")


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 1 (not argparse's 2): 0/1 only
        self.print_usage(sys.stderr)
        self.exit(1, f"smoke FAILED: {message}\n")


def base_url(api: str) -> str:
    """``https://host/stage`` or ``.../v1`` -> ``.../v1``."""
    api = api.strip().rstrip("/")
    if not api.endswith("/v1"):
        api += "/v1"
    return api


def is_loopback(api: str) -> bool:
    return (urlsplit(api).hostname or "") in LOOPBACK_HOSTS


def tokens(api: str, org: str) -> tuple[str, str]:
    """(token, meter token) from the environment, or a development token for a local API."""
    token, meter_token = os.environ.get("TOKEN", "").strip(), os.environ.get("METER_TOKEN", "")
    if not token:
        if not is_loopback(api):
            raise SmokeFailure("TOKEN is required for a non-local API (docs/operations.md)")
        from devtools import dev_tokens  # the local server's key; needs the package's imports

        token = dev_tokens.mint(
            f"smoke@{org}", org, role="admin", scope="credits:meter", ttl_seconds=600
        )
    return token, meter_token.strip() or token


def new_wallet_id() -> str:
    return f"smoke-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m devtools.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("API") or "http://127.0.0.1:3000")
    parser.add_argument("--plan", default="starter", help="the new wallet's plan")
    parser.add_argument("--org", default="smoke", help="organisation of a minted local token")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the ledger")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    parser.add_argument("--quiet", action="store_true", help="only the summary line")
    args = parser.parse_args(argv)
    wallet_id = new_wallet_id()
    smoke: Smoke | None = None
    try:
        token, meter_token = tokens(args.api, args.org)
        api = Api(base_url(args.api), token, meter_token, timeout=args.timeout)
        smoke = Smoke(api, wallet_id, plan=args.plan, wait_seconds=args.wait)
        if args.quiet:
            smoke.say = lambda line: None
        summary = smoke.run()
    except SmokeFailure as err:
        notes = "".join(f"; {note}" for note in (smoke.notes if smoke else []))
        print(f"smoke FAILED against {args.api}: {err} (wallet {wallet_id}){notes}", flush=True)
        return 1
    print(f"smoke OK against {args.api}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
