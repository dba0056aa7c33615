"""BYOK: a user's own provider key, envelope-encrypted (moto's KMS and DynamoDB).

The domain (:mod:`credit_meter.byok.keys`), the envelope (:mod:`credit_meter.byok.envelope`), the
wallet flags the hot path reads (``ky``), the HTTP handler (``functions/byok_api``) and the internal
key function (``functions/byok_key``). Every secret here is an obvious fake.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from credit_meter.api.byok_models import PROVIDERS, ByokIn
from credit_meter.byok import envelope, keys
from credit_meter.byok.keys import Byok
from credit_meter.core import clock
from credit_meter.core.errors import ByokNotFound
from credit_meter.storage import items, wallet_record
from credit_meter.storage.store import Put, Store
from devtools.apigw import FakeContext, http_event
from tests.logs import captured_logs

KEY_A = "sk-test-FAKE-0000-AAAA-1111"
KEY_B = "sk-ant-test-FAKE-0000-BBBB-2222"
T0 = 1_790_000_000.0  # 2026-09-21T...Z
T1 = T0 + 3600


@pytest.fixture(scope="module")
def kms_key(aws: Any) -> Iterator[str]:
    """A symmetric KMS key in moto for the module (the envelope's client made inside the mock)."""
    envelope.reset_client()
    kms = boto3.client("kms", region_name="us-east-1")
    try:
        yield kms.create_key(Description="byok unit tests")["KeyMetadata"]["Arn"]
    finally:
        envelope.reset_client()


@pytest.fixture
def table(fresh_table: str, kms_key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh table, KMS as the key wrapper, and a fixed clock."""
    monkeypatch.setenv(envelope.KEY_ID_ENV, kms_key)
    monkeypatch.delenv(envelope.LOCAL_KEY_FILE_ENV, raising=False)
    clock.set_clock(lambda: T0)
    try:
        yield fresh_table
    finally:
        clock.set_clock(None)


def raw_item(aws: Any, key: dict[str, str]) -> dict[str, Any] | None:
    found = aws.get_item(
        TableName=os.environ["TABLE_NAME"],
        Key={k: {"S": v} for k, v in key.items()},
        ConsistentRead=True,
    )
    item: dict[str, Any] | None = found.get("Item")
    return item


def all_items(aws: Any) -> list[dict[str, Any]]:
    return aws.scan(TableName=os.environ["TABLE_NAME"], ConsistentRead=True)["Items"]


def flags(aws: Any, wallet_id: str) -> set[str]:
    """The users a wallet is flagged with (``ky``), read raw."""
    item = raw_item(aws, wallet_record.key(wallet_id))
    assert item is not None
    return set(item.get(keys.FLAG, {}).get("SS", []))


def add_wallet(wallet_id: str, org_id: str | None, member: bool = True) -> None:
    """A wallet in an organisation as billing writes it: the wallet (with ``org``) and its
    membership line in one transaction. Only the attributes these tests read."""
    wallet = {
        "pk": items.wallet_pk(wallet_id),
        "sk": wallet_record.WALLET_SK,
        "wallet_id": wallet_id,
    }
    if org_id is None:
        Store().put_new(Put(wallet))
        return
    wallet["org"] = org_id
    if member:
        Store().transact(Put(wallet), Put(items.membership(org_id, wallet_id), None))
    else:
        Store().put_new(Put(wallet))


def leaks(key: str, *texts: str) -> list[str]:
    """The texts that contain the key, or a telling part of it (its middle)."""
    middle = key[4:-4]
    return [t for t in texts if key in t or middle in t]


# -- the envelope -----------------------------------------------------------------------------


def test_kms_seal_and_open_round_trip(table: str) -> None:
    wrapper = envelope.keys()
    assert isinstance(wrapper, envelope.KmsKeys)
    context = keys.context_of("o1", "u1")
    sealed = envelope.seal(KEY_A, context, wrapper)
    assert KEY_A.encode() not in sealed.ciphertext + sealed.wrapped_key
    assert len(sealed.nonce) == envelope.NONCE_BYTES
    assert KEY_A not in repr(sealed)
    assert envelope.open_sealed(sealed, context, wrapper) == KEY_A


@pytest.mark.parametrize(
    "other", [{"org_id": "o1", "user_id": "u2"}, {"org_id": "o2", "user_id": "u1"}, {}]
)
def test_kms_wrong_encryption_context_does_not_open(table: str, other: dict[str, str]) -> None:
    wrapper = envelope.keys()
    sealed = envelope.seal(KEY_A, keys.context_of("o1", "u1"), wrapper)
    with pytest.raises(envelope.DecryptionFailed):
        envelope.open_sealed(sealed, other, wrapper)


def test_tampered_ciphertext_does_not_open(table: str) -> None:
    wrapper = envelope.keys()
    context = keys.context_of("o1", "u1")
    sealed = envelope.seal(KEY_A, context, wrapper)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    tampered = envelope.Sealed(sealed.wrapped_key, sealed.nonce, flipped, sealed.key_id)
    with pytest.raises(envelope.DecryptionFailed):
        envelope.open_sealed(tampered, context, wrapper)


def test_local_keys_round_trip(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "byok-master.key"
    monkeypatch.delenv(envelope.KEY_ID_ENV, raising=False)
    monkeypatch.setenv(envelope.LOCAL_KEY_FILE_ENV, str(path))
    wrapper = envelope.keys()
    assert isinstance(wrapper, envelope.LocalKeys)
    context = keys.context_of("o1", "u1")
    sealed = envelope.seal(KEY_A, context, wrapper)
    assert path.stat().st_size == envelope.KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sealed.key_id.startswith("local:")
    # Another process (another wrapper on the same file) opens it; nothing else does.
    assert envelope.open_sealed(sealed, context, envelope.LocalKeys(str(path))) == KEY_A
    with pytest.raises(envelope.DecryptionFailed):
        envelope.open_sealed(sealed, keys.context_of("o1", "u2"), wrapper)
    with pytest.raises(envelope.DecryptionFailed):  # another master key
        envelope.open_sealed(sealed, context, envelope.LocalKeys(str(tmp_path / "other.key")))


def test_local_key_file_of_the_wrong_size_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "short.key"
    path.write_bytes(b"0123456789")
    with pytest.raises(envelope.KeyConfigError):
        envelope.seal(KEY_A, {"org_id": "o1", "user_id": "u1"}, envelope.LocalKeys(str(path)))


def test_keys_need_a_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(envelope.KEY_ID_ENV, raising=False)
    monkeypatch.delenv(envelope.LOCAL_KEY_FILE_ENV, raising=False)
    with pytest.raises(envelope.KeyConfigError, match="BYOK_KEY_ID"):
        envelope.keys()
    monkeypatch.setenv(envelope.LOCAL_KEY_FILE_ENV, "/tmp/unused")
    monkeypatch.setenv(envelope.KEY_ID_ENV, "alias/byok")
    assert isinstance(envelope.keys(), envelope.KmsKeys)  # KMS wins when both are set


# -- the domain -------------------------------------------------------------------------------


def test_put_then_get(table: str) -> None:
    view = Byok().put("o1", "u1", "openai", KEY_A)
    assert view == keys.ByokView("openai", KEY_A[-4:], clock.iso(T0), clock.iso(T0))
    assert Byok().get("o1", "u1") == view
    with pytest.raises(ByokNotFound):
        Byok().get("o1", "u2")
    with pytest.raises(ByokNotFound):
        Byok().get("o2", "u1")  # another organisation's user of the same id


def test_rotation_replaces_the_secret_and_keeps_created_at(table: str, aws: Any) -> None:
    key = keys.key_of("o1", "u1")
    Byok().put("o1", "u1", "openai", KEY_A)
    before = raw_item(aws, key)
    clock.set_clock(lambda: T1)
    view = Byok().put("o1", "u1", "anthropic", KEY_B)
    after = raw_item(aws, key)
    assert before is not None and after is not None
    assert view == keys.ByokView("anthropic", KEY_B[-4:], clock.iso(T0), clock.iso(T1))
    for name in ("wrapped_key", "nonce", "ciphertext"):
        assert after[name] != before[name], name
    assert Byok().reveal("o1", "u1", "test") == ("anthropic", KEY_B)


def test_delete_is_idempotent(table: str) -> None:
    Byok().put("o1", "u1", "openai", KEY_A)
    Byok().delete("o1", "u1")
    with pytest.raises(ByokNotFound):
        Byok().get("o1", "u1")
    Byok().delete("o1", "u1")  # nothing left: still fine
    Byok().delete("o1", "never-had-one")


def test_the_stored_item_holds_no_plaintext(table: str, aws: Any) -> None:
    Byok().put("o1", "u1", "openai", KEY_A)
    Byok().reveal("o1", "u1", "chat completion")
    found = all_items(aws)
    plain = KEY_A.encode()
    encodings = [plain, base64.b64encode(plain), plain.hex().encode(), KEY_A[4:-4].encode()]
    for item in found:
        for name, attr in item.items():
            ((_kind, value),) = attr.items()
            data = value if isinstance(value, bytes) else repr(value).encode()
            assert not [e for e in encodings if e in data], (item["sk"], name)
    item = raw_item(aws, keys.key_of("o1", "u1"))
    assert item is not None
    assert item["kind"] == {"S": "byok"} and item["last4"] == {"S": KEY_A[-4:]}
    assert {k for k, v in item.items() if "B" in v} == {"wrapped_key", "nonce", "ciphertext"}
    assert len(item["nonce"]["B"]) == envelope.NONCE_BYTES
    assert item["key_id"]["S"].startswith("arn:aws:kms:")


def test_a_ciphertext_moved_to_another_user_does_not_open(table: str, aws: Any) -> None:
    Byok().put("o1", "u1", "openai", KEY_A)
    Byok().put("o1", "u2", "openai", KEY_B)
    stolen = raw_item(aws, keys.key_of("o1", "u1"))
    assert stolen is not None
    stolen["sk"] = {"S": "K#u2"}
    stolen["user_id"] = {"S": "u2"}
    aws.put_item(TableName=os.environ["TABLE_NAME"], Item=stolen)
    with pytest.raises(envelope.DecryptionFailed):
        Byok().reveal("o1", "u2", "test")


def test_reveal_audits_then_returns_the_key(table: str, aws: Any) -> None:
    Byok().put("o1", "u1", "mistral", KEY_A)
    assert Byok().reveal("o1", "u1", "agent run 42", "req-1") == ("mistral", KEY_A)
    audits = [i for i in all_items(aws) if i["sk"]["S"].startswith("KA#")]
    assert len(audits) == 1
    audit = audits[0]
    assert audit["pk"] == {"S": "O#o1"}
    assert audit["sk"]["S"].startswith(f"KA#u1#{int(T0 * 1000):013d}#")
    assert audit["kind"] == {"S": "byok-audit"}
    assert audit["purpose"] == {"S": "agent run 42"}
    assert audit["request_id"] == {"S": "req-1"}
    assert audit["at"] == {"S": clock.iso(T0)}
    assert int(audit["ttl"]["N"]) == int(T0) + 365 * 86400


def test_no_audit_no_key(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Byok().put("o1", "u1", "openai", KEY_A)

    def refuse(self: Store, put: Put) -> None:
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(Store, "put_new", refuse)
    with pytest.raises(RuntimeError, match="audit write failed"):
        Byok().reveal("o1", "u1", "test")


def test_reveal_of_a_missing_key(table: str) -> None:
    with pytest.raises(ByokNotFound):
        Byok().reveal("o1", "u1", "test")


# -- the wallets' flags -----------------------------------------------------------------------


def test_put_and_delete_flag_the_wallets_of_the_organisation(table: str, aws: Any) -> None:
    add_wallet("w1", "o1")
    add_wallet("w2", "o1")
    add_wallet("w3", "o2")
    add_wallet("w4", None)
    Byok().put("o1", "u1", "openai", KEY_A)
    assert flags(aws, "w1") == flags(aws, "w2") == {"u1"}
    assert flags(aws, "w3") == flags(aws, "w4") == set()
    Byok().put("o1", "u2", "google", KEY_B)
    Byok().put("o1", "u1", "openai", KEY_B)  # a rotation changes no flag
    assert flags(aws, "w1") == flags(aws, "w2") == {"u1", "u2"}
    Byok().delete("o1", "u1")
    assert flags(aws, "w1") == flags(aws, "w2") == {"u2"}
    Byok().delete("o1", "u2")
    wallet = raw_item(aws, wallet_record.key("w1"))
    assert wallet is not None and keys.FLAG not in wallet  # the empty set is gone
    assert flags(aws, "w3") == set()


def test_a_wallet_joining_later_learns_the_keys(table: str, aws: Any) -> None:
    add_wallet("w1", "o1")
    Byok().put("o1", "u1", "openai", KEY_A)
    Byok().put("o1", "u2", "openai", KEY_B)
    Byok().put("o2", "u3", "openai", KEY_B)
    Byok().reveal("o1", "u1", "audit lines are not keys")
    add_wallet("w2", "o1")
    assert flags(aws, "w2") == set()  # the membership alone: not yet
    assert keys.flags_for_new_member(Store(), "o1", "w2") == 2
    assert flags(aws, "w2") == {"u1", "u2"}
    assert keys.flags_for_new_member(Store(), "o1", "w2") == 2  # again: the same set
    assert flags(aws, "w2") == {"u1", "u2"}
    Byok().delete("o1", "u1")
    assert flags(aws, "w1") == flags(aws, "w2") == {"u2"}


def test_a_flag_write_that_contradicts_the_key_item_is_skipped(table: str, aws: Any) -> None:
    """The interleavings the convergence argument rests on: a late PUT's add after a DELETE,
    and a late DELETE's remove after a PUT, each find the key item changed and write nothing."""
    add_wallet("w1", "o1")
    store = Store()
    assert keys._flag(store, "o1", "u1", "w1", present=True) is False  # no key: no add
    assert flags(aws, "w1") == set()
    Byok().put("o1", "u1", "openai", KEY_A)
    assert keys._flag(store, "o1", "u1", "w1", present=False) is False  # a key: no remove
    assert flags(aws, "w1") == {"u1"}


def test_a_flag_never_creates_a_wallet(table: str, aws: Any) -> None:
    Store().put_new(Put(items.membership("o1", "ghost"), None))  # a line without its wallet
    Byok().put("o1", "u1", "openai", KEY_A)
    assert raw_item(aws, wallet_record.key("ghost")) is None
    assert keys.flags_for_new_member(Store(), "o1", "ghost") == 0


def test_the_hot_path_reads_the_flags(table: str) -> None:
    """Through the store, as the metering path reads a wallet: ``ky`` is a set of user ids."""
    add_wallet("w1", "o1")
    Byok().put("o1", "u1", "openai", KEY_A)
    wallet = Store().get(wallet_record.key("w1"))
    assert wallet is not None and wallet[keys.FLAG] == {"u1"}


# -- the models -------------------------------------------------------------------------------


def test_the_models_never_show_the_key() -> None:
    body = ByokIn.model_validate({"provider": "openai", "api_key": KEY_A})
    assert body.api_key.get_secret_value() == KEY_A
    shown = [repr(body), str(body), json.dumps(body.model_dump(mode="json"))]
    assert not leaks(KEY_A, *shown)
    assert set(PROVIDERS) == {
        "openai",
        "anthropic",
        "google",
        "azure-openai",
        "mistral",
        "openai-compatible",
    }


# -- the HTTP API -----------------------------------------------------------------------------

Call = Callable[..., tuple[int, dict[str, str], Any]]
MEMBER = {"sub": "u1", "org_id": "o1", "role": "member"}


@pytest.fixture(scope="module")
def byok_app(aws: Any) -> Any:
    """``functions/byok_api/app.py``, imported once the functions' environment is set."""
    return importlib.import_module("byok_api.app")


@pytest.fixture(scope="module")
def key_app(aws: Any) -> Any:
    """``functions/byok_key/app.py``."""
    return importlib.import_module("byok_key.app")


@pytest.fixture
def call(byok_app: Any, table: str) -> Call:
    """``call(method, user_id="u1", body=None, claims=MEMBER, headers=None, scopes=None)``
    through the real handler with the JWT authorizer's claims (None: no authorizer)."""

    def run(
        method: str,
        user_id: str = "u1",
        body: Any = None,
        claims: dict[str, str] | None = MEMBER,
        headers: dict[str, str] | None = None,
        scopes: list[str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, dict):
            hdrs.setdefault("content-type", "application/json")
        event = http_event(
            method, f"/v1/users/{user_id}/byok", body, hdrs, claims=claims, scopes=scopes or []
        )
        response = byok_app.handler(event, FakeContext())
        out = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        raw = response.get("body")
        return response["statusCode"], out, json.loads(raw) if raw else None

    return run


def test_http_put_get_delete(call: Call) -> None:
    status, headers, body = call("PUT", body={"provider": "openai", "api_key": KEY_A})
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body == {
        "provider": "openai",
        "last4": KEY_A[-4:],
        "created_at": clock.iso(T0),
        "updated_at": clock.iso(T0),
    }
    assert call("GET") == (200, headers, body)
    clock.set_clock(lambda: T1)
    status, _, rotated = call("PUT", body={"provider": "azure-openai", "api_key": KEY_B})
    assert status == 200
    assert rotated == {
        "provider": "azure-openai",
        "last4": KEY_B[-4:],
        "created_at": clock.iso(T0),
        "updated_at": clock.iso(T1),
    }
    status, _, gone = call("DELETE")
    assert (status, gone) == (204, None)
    assert call("DELETE")[0] == 204  # idempotent
    status, headers, problem = call("GET")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert problem["type"] == "/problems/byok-not-found"


@pytest.mark.parametrize(
    ("claims", "scopes", "user", "status"),
    [
        (None, None, "u1", 401),  # no token
        ({"sub": "u1", "role": "member"}, None, "u1", 401),  # no organisation
        (MEMBER, None, "u2", 403),  # another user's key
        ({"sub": "u1", "org_id": "o1", "role": "owner"}, None, "u2", 403),  # even the owner's
        ({"sub": "u1", "org_id": "o1"}, ["credits:admin"], "u1", 403),  # a service, never
    ],
)
def test_http_only_the_user_themself(
    call: Call,
    aws: Any,
    claims: dict[str, str] | None,
    scopes: list[str] | None,
    user: str,
    status: int,
) -> None:
    for method, body in (("PUT", {"provider": "openai", "api_key": KEY_A}), ("GET", None)):
        got, _, problem = call(method, user, body, claims=claims, scopes=scopes)
        assert got == status, problem
    assert call("DELETE", user, claims=claims, scopes=scopes)[0] == status
    assert all_items(aws) == []


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("no provider", {"api_key": KEY_A}, 422),
    ("unknown provider", {"provider": "openai2", "api_key": KEY_A}, 422),
    ("provider not a string", {"provider": 1, "api_key": KEY_A}, 422),
    ("no key", {"provider": "openai"}, 422),
    ("key null", {"provider": "openai", "api_key": None}, 422),
    ("key a number", {"provider": "openai", "api_key": 12345678}, 422),
    ("key too short", {"provider": "openai", "api_key": "sk-FAKE"}, 422),
    ("key too long", {"provider": "openai", "api_key": "k" * 513}, 422),
    ("key with a space", {"provider": "openai", "api_key": "sk-test FAKE-0000"}, 422),
    ("key with a newline", {"provider": "openai", "api_key": "sk-test-FAKE\n0000"}, 422),
    ("key not ASCII", {"provider": "openai", "api_key": "sk-test-FAKE-é000"}, 422),
    ("unknown field", {"provider": "openai", "api_key": KEY_A, "note": "x"}, 422),
    ("a list", [{"provider": "openai", "api_key": KEY_A}], 400),
    ("not JSON", '{"provider": "openai", "api_key": ', 400),
    ("no body", None, 400),
]


@pytest.mark.parametrize(("case", "body", "status"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_http_bad_bodies(call: Call, aws: Any, case: str, body: Any, status: int) -> None:
    sent = json.dumps(body) if isinstance(body, list) else body
    got, headers, problem = call("PUT", body=sent)
    assert got == status, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["status"] == status
    secret = body.get("api_key") if isinstance(body, dict) else None
    if isinstance(secret, str) and len(secret) >= 8:
        assert not leaks(secret, json.dumps(problem))
    assert all_items(aws) == []  # bad input writes nothing


def test_http_bad_media_type_and_user_id(call: Call) -> None:
    """A media type that is not JSON; a user id (the token's, percent-encoded in the path)
    that cannot be a key part."""
    status, _, _ = call(
        "PUT",
        body=json.dumps({"provider": "openai", "api_key": KEY_A}),
        headers={"content-type": "text/plain"},
    )
    assert status == 415
    odd = {"sub": "u#1", "org_id": "o1", "role": "member"}
    status, _, problem = call("GET", "u%231", claims=odd)
    assert status == 422 and problem["errors"][0]["field"] == "user_id"


def test_http_wallets_are_flagged(call: Call, aws: Any) -> None:
    add_wallet("w1", "o1")
    assert call("PUT", body={"provider": "openai", "api_key": KEY_A})[0] == 200
    assert flags(aws, "w1") == {"u1"}
    assert call("DELETE")[0] == 204
    assert flags(aws, "w1") == set()


# -- the internal path ------------------------------------------------------------------------


def test_internal_reveal(key_app: Any, table: str, aws: Any) -> None:
    Byok().put("o1", "u1", "openai", KEY_A)
    context = FakeContext()
    with captured_logs(key_app.logger) as logs:
        got = key_app.handler({"org_id": "o1", "user_id": "u1", "purpose": "chat"}, context)
    assert got == {"provider": "openai", "api_key": KEY_A}
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    revealed = [line for line in lines if line["message"] == "byok key revealed"]
    assert len(revealed) == 1
    assert {k: revealed[0][k] for k in ("org_id", "user_id", "purpose", "request_id")} == {
        "org_id": "o1",
        "user_id": "u1",
        "purpose": "chat",
        "request_id": context.aws_request_id,
    }
    assert not leaks(KEY_A, logs.getvalue())
    assert [i for i in all_items(aws) if i["sk"]["S"].startswith("KA#u1#")]


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ({"org_id": "o1", "user_id": "u1"}, ["purpose"]),
        ({"org_id": "o1", "user_id": "u1", "purpose": ""}, ["purpose"]),
        ({"org_id": "o1", "user_id": "u1", "purpose": "p" * 201}, ["purpose"]),
        ({"org_id": "o 1", "user_id": "u#1", "purpose": "x"}, ["org_id", "user_id"]),
        ({"org_id": "o1", "user_id": "u1", "purpose": "x", "extra": 1}, ["extra"]),
        ([], ["event"]),
        ("o1/u1", ["event"]),
    ],
)
def test_internal_bad_requests(key_app: Any, table: str, event: Any, fields: list[str]) -> None:
    got = key_app.handler(event, FakeContext())
    assert got["error"] == "invalid-request"
    assert [f["field"] for f in got["fields"]] == fields


def test_internal_missing_key(key_app: Any, table: str, aws: Any) -> None:
    got = key_app.handler({"org_id": "o1", "user_id": "u1", "purpose": "x"}, FakeContext())
    assert got == {"error": "byok-not-found"}
    assert all_items(aws) == []  # nothing revealed, nothing audited


# -- the key never leaves ---------------------------------------------------------------------


def test_the_key_is_in_no_response_and_no_log(
    call: Call,
    byok_app: Any,
    key_app: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    responses: list[Any] = []
    with captured_logs(byok_app.logger) as logs:
        responses.append(call("PUT", body={"provider": "openai", "api_key": KEY_A}))
        responses.append(call("GET"))
        clock.set_clock(lambda: T1)
        responses.append(call("PUT", body={"provider": "openai", "api_key": KEY_B}))
        responses.append(call("GET"))
        revealed = key_app.handler(
            {"org_id": "o1", "user_id": "u1", "purpose": "chat"}, FakeContext()
        )
        # Failing requests that carry a key: a bad field next to it, the key in the wrong
        # field, a key for someone else, a body that is not JSON around it.
        responses.append(call("PUT", body={"provider": "nope", "api_key": KEY_A}))
        responses.append(call("PUT", body={"provider": KEY_A, "api_key": KEY_A}))
        responses.append(call("PUT", body={"provider": "openai", "key": KEY_A}))
        responses.append(call("PUT", "u2", body={"provider": "openai", "api_key": KEY_A}))
        responses.append(call("PUT", body='{"provider":"openai","api_key":"' + KEY_A))
        responses.append(call("DELETE"))
        key_app.handler({"org_id": "o1", "user_id": "u1", "purpose": KEY_A * 9}, FakeContext())
    assert revealed == {"provider": "openai", "api_key": KEY_B}
    out = capsys.readouterr()
    texts = [json.dumps(r) for r in responses]
    texts += [logs.getvalue(), out.out, out.err, caplog.text]
    for key in (KEY_A, KEY_B):
        assert not leaks(key, *texts), key
    assert "byok key stored" in logs.getvalue()  # the log was captured at all
