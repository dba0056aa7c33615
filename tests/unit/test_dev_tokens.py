"""Local development tokens (devtools.dev_tokens) and the local server's JWT authorizer.

Every key and token here is made while the tests run (the key in a temporary file named by
``$DEV_JWT_KEY_FILE``); nothing reaches a socket except the CLI tests' subprocesses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devtools import dev_tokens, local_server
from devtools.dev_tokens import AUDIENCE, ISSUER, DevKey, TokenError
from devtools.local_server import ApiGatewayEmulator, JwtAuthorizer, Route

ROOT = Path(__file__).resolve().parents[2]
DEV_PYTHONPATH = os.pathsep.join(str(ROOT / p) for p in ("layers/credit_meter", "functions", "."))


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The development key of these tests: made on first use in a temporary file."""
    path = tmp_path_factory.mktemp("dev-key") / "dev-jwt-key.pem"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(dev_tokens.KEY_FILE_ENV, str(path))
        yield path


@pytest.fixture(scope="module")
def key(key_path: Path) -> DevKey:
    return dev_tokens.load_key()


@pytest.fixture(scope="module")
def other_key() -> DevKey:
    return DevKey.generate()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "admin@o1",
        "org_id": "o1",
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# --- tokens the authorizer must refuse, each with (a part of) its reason ----------------------


def _expired(key: DevKey, other: DevKey) -> str:
    return dev_tokens.mint("u1", "o1", "admin", ttl_seconds=60, now=time.time() - 3600, key=key)


def _not_yet_valid(key: DevKey, other: DevKey) -> str:
    return dev_tokens.mint("u1", "o1", "admin", now=time.time() + 3600, key=key)


def _wrong_audience(key: DevKey, other: DevKey) -> str:
    return dev_tokens.mint("u1", "o1", "admin", claims={"aud": "another-api"}, key=key)


def _wrong_issuer(key: DevKey, other: DevKey) -> str:
    return dev_tokens.mint("u1", "o1", "admin", claims={"iss": "https://evil.example"}, key=key)


def _alg_none(key: DevKey, other: DevKey) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": key.kid}
    return f"{_b64json(header)}.{_b64json(_claims())}."


def _hs256_with_public_key(key: DevKey, other: DevKey) -> str:
    """The classic confusion: HMAC keyed with the RSA public key's PEM."""
    secret = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64json({'alg': 'HS256', 'kid': key.kid})}.{_b64json(_claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered_payload(key: DevKey, other: DevKey) -> str:
    header, _, signature = dev_tokens.mint("u1", "o1", "member", key=key).split(".")
    forged = _b64json(_claims(sub="u1", role="owner"))  # the role flipped, the signature kept
    return f"{header}.{forged}.{signature}"


def _tampered_signature(key: DevKey, other: DevKey) -> str:
    header, payload, signature = dev_tokens.mint("u1", "o1", "admin", key=key).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01
    return f"{header}.{payload}.{_b64(bytes(raw))}"


def _another_key(key: DevKey, other: DevKey) -> str:
    return dev_tokens.mint("u1", "o1", "admin", key=other)


def _another_key_claiming_ours(key: DevKey, other: DevKey) -> str:
    return jwt.encode(_claims(), other.private_key, algorithm="RS256", headers={"kid": key.kid})


def _missing(claim: str) -> Callable[[DevKey, DevKey], str]:
    def token(key: DevKey, other: DevKey) -> str:
        claims = _claims(**{claim: None})
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    return token


def _garbage(key: DevKey, other: DevKey) -> str:
    return "not-a-jwt"


def _truncated(key: DevKey, other: DevKey) -> str:
    return dev_tokens.mint("u1", "o1", "admin", key=key).rsplit(".", 1)[0]


BAD_TOKENS: dict[str, tuple[Callable[[DevKey, DevKey], str], str]] = {
    "expired": (_expired, "the token has expired"),
    "not yet valid": (_not_yet_valid, "not valid yet"),
    "wrong audience": (_wrong_audience, "the token does not have a valid audience"),
    "wrong issuer": (_wrong_issuer, "the token does not have a valid issuer"),
    "alg none": (_alg_none, "signing method none is invalid"),
    "HS256 keyed with the public key": (_hs256_with_public_key, "signing method HS256"),
    "tampered payload": (_tampered_payload, "signature is invalid"),
    "tampered signature": (_tampered_signature, "signature is invalid"),
    "another key": (_another_key, "not signed by the local development key"),
    "another key, our kid": (_another_key_claiming_ours, "signature is invalid"),
    "missing exp": (_missing("exp"), "no exp claim"),
    "missing iat": (_missing("iat"), "no iat claim"),
    "missing sub": (_missing("sub"), "no sub claim"),
    "missing aud": (_missing("aud"), "no aud claim"),
    "missing iss": (_missing("iss"), "no iss claim"),
    "not a JWT": (_garbage, "the token is malformed"),
    "no signature part": (_truncated, "the token is malformed"),
}


# --- dev_tokens ---------------------------------------------------------------------------


def test_mint_verify_round_trip(key: DevKey) -> None:
    token = dev_tokens.mint("ana", "o1", role="member", ttl_seconds=3600)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("RS256", key.kid)

    claims = dev_tokens.verify(token)
    assert {k: claims[k] for k in ("iss", "aud", "sub", "org_id", "role")} == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ana",
        "org_id": "o1",
        "role": "member",
    }
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    assert "scope" not in claims


def test_a_service_token_has_scopes_and_no_role(key: DevKey) -> None:
    claims = dev_tokens.verify(dev_tokens.mint("svc", "o1", scope=["credits:meter", "x:y"]))
    assert claims["scope"] == "credits:meter x:y"
    assert "role" not in claims
    default = dev_tokens.verify(dev_tokens.mint("u", "o1", "admin"))
    assert default["exp"] - default["iat"] == 12 * 3600


@pytest.mark.parametrize("name", BAD_TOKENS)
def test_bad_tokens_are_refused(name: str, key: DevKey, other_key: DevKey) -> None:
    make, reason = BAD_TOKENS[name]
    token = make(key, other_key)
    with pytest.raises(TokenError) as refused:
        dev_tokens.verify(token)
    assert reason in refused.value.reason
    assert token not in refused.value.reason
    assert str(refused.value) == refused.value.reason


def test_an_empty_token_is_refused(key: DevKey) -> None:
    with pytest.raises(TokenError, match="no token"):
        dev_tokens.verify("")


def test_a_little_clock_skew_is_allowed(key: DevKey) -> None:
    token = dev_tokens.mint("u1", "o1", "admin", ttl_seconds=60, now=time.time() - 70)
    assert dev_tokens.verify(token)["sub"] == "u1"  # expired 10 s ago: within the leeway


def test_the_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "key.pem"
    first = dev_tokens.load_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.pem"]  # no temporary left
    assert dev_tokens.load_key(path).kid == first.kid
    token = dev_tokens.mint("u1", "o1", "admin", key=first)
    assert dev_tokens.verify(token, key=dev_tokens.load_key(path))["sub"] == "u1"

    # A new key in the file (a distclean, say): the old tokens are refused.
    path.write_bytes(DevKey.generate().pem())
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    with pytest.raises(TokenError, match="not signed by the local development key"):
        dev_tokens.verify(token, key=dev_tokens.load_key(path))


def test_default_subject() -> None:
    assert dev_tokens.default_subject("o1", "admin", None) == "admin@o1"
    assert dev_tokens.default_subject("o1", None, "credits:meter") == "credits-meter@o1"


# --- the local server's request path ---------------------------------------------------------

CHARGES = "/v1/wallets/w1/charges"
WEBHOOK = "/v1/webhooks/stripe"


class Captured:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"ok": True})}


@pytest.fixture
def gateway(key: DevKey) -> tuple[ApiGatewayEmulator, Captured, Captured]:
    """The emulator as ``make run`` builds it, with handlers that capture their events."""
    api, webhook = Captured(), Captured()
    webhook_routes = local_server.routes_from_template(function_id=local_server.WEBHOOK_FUNCTION_ID)
    emulator = ApiGatewayEmulator(
        api, local_server.routes_from_template(), [(webhook_routes, webhook)], JwtAuthorizer()
    )
    return emulator, api, webhook


def _call(
    emulator: ApiGatewayEmulator, method: str, path: str, authorization: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = [("Host", "127.0.0.1:3000"), ("Content-Type", "application/json")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    response = emulator(method, path, headers, b'{"feature":"chat","credits":"1"}')
    return response.status, dict(response.headers), json.loads(response.body)


def test_no_token_is_401_and_the_handler_is_not_invoked(
    gateway: tuple[ApiGatewayEmulator, Captured, Captured], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, api, _ = gateway
    caplog.set_level(logging.INFO, logger="devtools.local_server")
    status, headers, body = _call(emulator, "POST", CHARGES)
    assert (status, body) == (401, {"message": "Unauthorized"})
    assert headers["www-authenticate"] == "Bearer"
    assert headers["content-type"] == "application/json"
    assert api.events == []
    assert [r.getMessage() for r in caplog.records] == [
        "401 POST /v1/wallets/w1/charges: no Authorization header"
    ]


@pytest.mark.parametrize("name", BAD_TOKENS)
def test_bad_tokens_are_401_and_the_handler_is_not_invoked(
    name: str,
    gateway: tuple[ApiGatewayEmulator, Captured, Captured],
    key: DevKey,
    other_key: DevKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator, api, _ = gateway
    make, reason = BAD_TOKENS[name]
    token = make(key, other_key)
    caplog.set_level(logging.INFO, logger="devtools.local_server")
    status, headers, body = _call(emulator, "POST", CHARGES, f"Bearer {token}")
    assert (status, body) == (401, {"message": "Unauthorized"})
    challenge = headers["www-authenticate"]
    assert challenge.startswith('Bearer scope="" error="invalid_token" error_description="')
    assert reason in challenge
    assert api.events == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("401 POST /v1/wallets/w1/charges: ") and reason in line
    assert token not in caplog.text


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Bearer a b"])
def test_malformed_authorization_headers_are_401(
    value: str, gateway: tuple[ApiGatewayEmulator, Captured, Captured]
) -> None:
    emulator, api, _ = gateway
    status, headers, body = _call(emulator, "GET", "/v1/wallets/w1", value)
    assert (status, body) == (401, {"message": "Unauthorized"})
    assert headers["www-authenticate"].startswith("Bearer")
    assert api.events == []


def test_a_valid_token_reaches_the_handler_with_its_claims(
    gateway: tuple[ApiGatewayEmulator, Captured, Captured], key: DevKey
) -> None:
    emulator, api, _ = gateway
    token = dev_tokens.mint(
        "ana", "o1", "member", claims={"groups": ["a", "b"], "n": 5, "f": 1.5, "flag": True}
    )
    status, _, body = _call(emulator, "POST", CHARGES, f"Bearer {token}")
    assert (status, body) == (200, {"ok": True})
    (event,) = api.events
    authorizer = event["requestContext"]["authorizer"]
    claims = authorizer["jwt"]["claims"]
    verified = dev_tokens.verify(token)
    assert claims["sub"] == "ana" and claims["org_id"] == "o1" and claims["role"] == "member"
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["exp"] == str(verified["exp"]) and claims["iat"] == str(verified["iat"])
    assert (claims["groups"], claims["n"], claims["f"], claims["flag"]) == (
        "[a b]",
        "5",
        "1.5",
        "true",
    )
    assert all(isinstance(v, str) for v in claims.values())
    assert authorizer["jwt"]["scopes"] is None  # no scope claim
    assert event["routeKey"] == "POST /v1/wallets/{wallet_id}/charges"


def test_a_service_token_passes_its_scopes_split(
    gateway: tuple[ApiGatewayEmulator, Captured, Captured], key: DevKey
) -> None:
    emulator, api, _ = gateway
    token = dev_tokens.mint("svc", "o1", scope="credits:meter credits:admin")
    # API Gateway takes the token with or without the Bearer prefix.
    for authorization in (f"Bearer {token}", f"bearer {token}", token):
        assert _call(emulator, "POST", CHARGES, authorization)[0] == 200
    for event in api.events:
        jwt_context = event["requestContext"]["authorizer"]["jwt"]
        assert jwt_context["scopes"] == ["credits:meter", "credits:admin"]
        assert jwt_context["claims"]["scope"] == "credits:meter credits:admin"
        assert "role" not in jwt_context["claims"]
    assert len(api.events) == 3


def test_the_stripe_webhook_needs_no_token(
    gateway: tuple[ApiGatewayEmulator, Captured, Captured],
) -> None:
    emulator, api, webhook = gateway
    assert _call(emulator, "POST", WEBHOOK)[0] == 200
    (event,) = webhook.events
    assert "authorizer" not in event["requestContext"]
    assert api.events == []


def test_an_unknown_route_is_404_before_any_token_check(
    gateway: tuple[ApiGatewayEmulator, Captured, Captured],
) -> None:
    emulator, api, _ = gateway
    status, _, body = _call(emulator, "DELETE", "/v1/wallets/w1")
    assert (status, body) == (404, {"message": "Not Found"})
    assert api.events == []


def test_every_route_but_the_webhook_wants_a_token() -> None:
    api_routes = local_server.routes_from_template()
    webhook_routes = local_server.routes_from_template(function_id=local_server.WEBHOOK_FUNCTION_ID)
    assert api_routes and not any(route.open for route in api_routes)
    assert [(r.key, r.open) for r in webhook_routes] == [("POST /v1/webhooks/stripe", True)]


_TEMPLATE = """
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      {auth}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Plain:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Method: GET, Path: /v1/plain}}
        Open:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Method: POST, Path: /v1/open, Auth: {{Authorizer: NONE}}}}
        Jwt:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Method: PUT, Path: /v1/jwt, Auth: {{Authorizer: Jwt}}}}
        Webhook:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Method: POST, Path: /v1/webhooks/stripe}}
"""
_JWT = "Jwt: {JwtConfiguration: {issuer: x, audience: [y]}}"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        # No authorizer in the template yet: all but Stripe's webhook want a token.
        ("StageName: x", {"plain": False, "open": True, "jwt": False, "webhook": True}),
        # A default authorizer: routes opt out with Authorizer NONE.
        (
            f"Auth: {{Authorizers: {{{_JWT}}}, DefaultAuthorizer: Jwt}}",
            {"plain": False, "open": True, "jwt": False, "webhook": False},
        ),
        # Authorizers but no default: a route without one is open, as in API Gateway.
        (
            f"Auth: {{Authorizers: {{{_JWT}}}}}",
            {"plain": True, "open": True, "jwt": False, "webhook": True},
        ),
    ],
)
def test_which_routes_are_open_follows_the_template(
    tmp_path: Path, auth: str, expected: dict[str, bool]
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(_TEMPLATE.format(auth=auth))
    routes = local_server.routes_from_template(path, "Fn")
    names = {"/v1/plain": "plain", "/v1/open": "open", "/v1/jwt": "jwt", WEBHOOK: "webhook"}
    assert {names[r.path]: r.open for r in routes} == expected


def test_routes_parse_keeps_the_open_flag() -> None:
    assert Route.parse("get", "/x/{id}", open=True).open is True
    assert Route.parse("get", "/x/{id}").open is False


# --- the CLI and make token ----------------------------------------------------------------


def _single_token(stdout: str, key_path: Path) -> dict[str, Any]:
    lines = stdout.splitlines()
    assert len(lines) == 1 and stdout.endswith("\n"), stdout
    return dev_tokens.verify(lines[0], key=dev_tokens.load_key(key_path))


def _env(key_path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=DEV_PYTHONPATH)
    env[dev_tokens.KEY_FILE_ENV] = str(key_path)
    return env


def test_cli_prints_one_token_that_verifies(key_path: Path, key: DevKey) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "devtools.dev_tokens", "--role", "admin", "--org", "o1"],
        cwd=ROOT,
        env=_env(key_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    claims = _single_token(run.stdout, key_path)
    assert (claims["sub"], claims["org_id"], claims["role"]) == ("admin@o1", "o1", "admin")
    assert claims["exp"] - claims["iat"] == 12 * 3600


def test_cli_service_token_and_options(
    key_path: Path, key: DevKey, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--scope", "credits:meter", "--org", "o1", "--sub", "backend", "--ttl", "90"]
    assert dev_tokens.main(argv) == 0
    claims = _single_token(capsys.readouterr().out, key_path)
    assert (claims["sub"], claims["scope"], claims["exp"] - claims["iat"]) == (
        "backend",
        "credits:meter",
        90,
    )
    assert "role" not in claims


@pytest.mark.parametrize(
    "argv",
    [
        ["--org", "o1"],  # neither role nor scope
        ["--role", "root", "--org", "o1"],
        ["--scope", "credits:everything", "--org", "o1"],
        ["--role", "admin"],  # no organisation
        ["--role", "admin", "--org", "o1", "--ttl", "0"],
    ],
)
def test_cli_refuses_tokens_that_would_authenticate_nobody(
    argv: list[str], key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        dev_tokens.main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("silent", [["-s"], []])
def test_make_token_prints_only_the_token(silent: list[str], key_path: Path, key: DevKey) -> None:
    env = _env(key_path)
    env.pop("MAKEFLAGS", None)  # as from a shell, not from inside make unit
    env.pop("MAKELEVEL", None)
    run = subprocess.run(
        ["make", *silent, "token", "ROLE=member", "ORG=o1", "SUB=ana", "TTL=600"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    claims = _single_token(run.stdout, key_path)
    assert (claims["sub"], claims["role"], claims["exp"] - claims["iat"]) == ("ana", "member", 600)
