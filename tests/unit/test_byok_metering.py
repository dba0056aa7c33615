"""BYOK end to end through the real handlers: a member stores their own provider key with the
BYOK API, the product backend meters their AI actions with the metering API, and the tokens
cost no credits while the other meters still charge; the activity log shows it all. Deleting
the key returns the member to credits. The key never appears in a response or a log line."""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from credit_meter.byok import envelope
from credit_meter.metering import pricing_modes
from devtools.apigw import FakeContext, http_event
from tests.logs import captured_logs
from tests.principals import TEST_ORG, token

API_KEY = "sk-test-FAKE-byok-metering-9876"
WID = "w-byok"
ANA = token("member", sub="ana")
BEN = token("member", sub="ben")
METER = token(scopes=("credits:meter",))
ADMIN = token("admin")
USAGE = [
    {"meter": "input_tokens", "model": "claude-opus", "quantity": 10000},
    {"meter": "output_tokens", "model": "claude-opus", "quantity": 2000},
    {"meter": "compute_minute", "quantity": 4},
]


@pytest.fixture(scope="module")
def kms_key(aws: Any) -> Iterator[str]:
    envelope.reset_client()
    try:
        yield boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    finally:
        envelope.reset_client()


@pytest.fixture
def setup(
    fresh_table: str, kms_key: str, monkeypatch: pytest.MonkeyPatch, api: Any
) -> Iterator[io.StringIO]:
    """A wallet of the test organisation, KMS for the keys, fresh hints, and every log line
    of both functions captured."""
    monkeypatch.setenv(envelope.KEY_ID_ENV, kms_key)
    monkeypatch.delenv(envelope.LOCAL_KEY_FILE_ENV, raising=False)
    monkeypatch.setattr(pricing_modes, "mode_hints", pricing_modes.ModeHints())
    status, _, body = api("PUT", f"/v1/wallets/{WID}", {"plan": "pro"}, as_=ADMIN)
    assert status == 201, body
    metering = importlib.import_module("metering_api.app")
    byok = importlib.import_module("byok_api.app")
    with captured_logs(metering.logger) as api_logs, captured_logs(byok.logger) as byok_logs:
        yield _Both(api_logs, byok_logs)


class _Both(io.StringIO):
    """The two functions' captured logs, read as one text."""

    def __init__(self, *parts: io.StringIO) -> None:
        super().__init__()
        self.parts = parts

    def getvalue(self) -> str:
        return "".join(p.getvalue() for p in self.parts)


def _byok(method: str, user: str, claims: dict[str, str], body: Any = None) -> tuple[int, Any]:
    app = importlib.import_module("byok_api.app")
    event = http_event(method, f"/v1/users/{user}/byok", body, claims=claims)
    response = app.handler(event, FakeContext())
    raw = response.get("body")
    return response["statusCode"], json.loads(raw) if raw else None


def _charge(api: Any, member: str) -> Decimal:
    status, _, body = api(
        "POST",
        f"/v1/wallets/{WID}/charges",
        {"usage": USAGE, "feature": "agent", "member_id": member},
        as_=METER,
    )
    assert status == 201, body
    return Decimal(body["charged"])


def test_byok_member_pays_runtime_only_until_the_key_is_deleted(
    api: Any, setup: io.StringIO, project_ledger: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, quote = api("POST", f"/v1/wallets/{WID}/quote", {"usage": USAGE}, as_=ANA)
    assert status == 200
    list_price = Decimal(quote["credits"])
    compute = Decimal(4)
    assert list_price > compute

    status, body = _byok("PUT", "ana", ANA, {"provider": "anthropic", "api_key": API_KEY})
    assert status == 200, body
    assert body["last4"] == API_KEY[-4:]

    assert _charge(api, "ana") == compute  # tokens: billed by ana's provider
    assert _charge(api, "ben") == list_price  # ben has no key: credits

    # Rotation keeps BYOK on; the admin cannot see or delete ana's key.
    status, body = _byok("PUT", "ana", ANA, {"provider": "openai", "api_key": API_KEY + "X"})
    assert status == 200 and body["provider"] == "openai"
    assert _byok("GET", "ana", ADMIN)[0] == 403
    assert _byok("DELETE", "ana", ADMIN)[0] == 403
    assert _byok("GET", "ana", BEN)[0] == 403
    assert _charge(api, "ana") == compute

    status, _ = _byok("DELETE", "ana", ANA)
    assert status == 204
    assert _charge(api, "ana") == list_price  # back to credits (a stale guess corrected)

    project_ledger()
    status, _, log = api(
        "GET", f"/v1/wallets/{WID}/transactions", query={"member_id": "ana"}, as_=ANA
    )
    assert status == 200, log
    rows = [e for e in reversed(log["items"]) if e["type"] == "charge"]
    assert [(e["billing"], Decimal(e["credits"])) for e in rows] == [
        ("byok", -compute),
        ("byok", -compute),
        ("credits", -list_price),
    ]
    lines = {x["operation"]: x for x in rows[0]["lines"]}
    assert Decimal(lines["input_tokens"]["quantity"]) == 10000
    assert Decimal(lines["input_tokens"]["cost"]) == 0
    assert Decimal(lines["compute_minute"]["cost"]) == compute
    # ana sees only her own activity: ben's charge is not in her log
    assert {e["member_id"] for e in log["items"] if e["type"] == "charge"} == {"ana"}
    assert _byok("GET", "ana", ANA)[0] == 404

    # The key never showed up anywhere: responses above were checked; now every log line.
    out = capsys.readouterr()
    assert "byok key stored" in setup.getvalue()  # the capture does see the functions' logs
    for text in (setup.getvalue(), out.out, out.err):
        assert API_KEY not in text
        assert API_KEY[:-4] not in text


def test_a_wallet_created_after_the_key_is_flagged_too(api: Any, setup: io.StringIO) -> None:
    status, _ = _byok("PUT", "ana", ANA, {"provider": "anthropic", "api_key": API_KEY})
    assert status == 200
    status, _, body = api("PUT", "/v1/wallets/w-later", {"plan": "pro"}, as_=ADMIN)
    assert status == 201, body
    status, _, charged = api(
        "POST",
        "/v1/wallets/w-later/charges",
        {"usage": USAGE[:2], "feature": "chat", "member_id": "ana"},
        as_=METER,
    )
    assert (status, Decimal(charged["charged"])) == (201, 0), charged
    assert body["org_id"] == TEST_ORG
