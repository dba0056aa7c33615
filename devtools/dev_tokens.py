"""Local development tokens: what the local server accepts in place of an identity provider's.

In AWS, API Gateway's JWT authorizer verifies each request's bearer token against the issuer and
audience given as template parameters and hands the handlers its claims. Locally,
:mod:`devtools.local_server` does the same with the tokens this module mints:

* the signing key is an RSA key pair (RS256: API Gateway's JWT authorizer takes RSA keys only)
  made on first use into ``.cache/dev-jwt-key.pem`` (mode 0600, beside DynamoDB Local; git
  ignores ``.cache/``; ``$DEV_JWT_KEY_FILE`` names another file). Deleting it (``make
  distclean``) makes a new key, and the tokens minted before are then refused;
* the issuer is :data:`ISSUER` and the audience :data:`AUDIENCE`, both fixed;
* :func:`mint` writes ``sub``, ``org_id``, ``role`` and/or ``scope`` (see
  ``credit_meter.api.access``), ``iat`` and ``exp``; :func:`verify` checks them as the authorizer
  does and raises :class:`TokenError` with a short reason.

From the shell (``make token`` runs this): ``python -m devtools.dev_tokens --role admin --org o1``
prints one token; ``--scope credits:meter`` with no role is a product backend's token.

Development only: no Lambda imports this module, and the key never leaves the machine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from credit_meter.api.access import ROLES, SCOPES

ISSUER = "http://127.0.0.1:3000/local-issuer"
AUDIENCE = "credit-meter-local"
ALGORITHM = "RS256"
DEFAULT_TTL_SECONDS = 12 * 3600
LEEWAY_SECONDS = 30  # clock skew allowed on exp, nbf and iat
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")
KEY_FILE_ENV = "DEV_JWT_KEY_FILE"
DEFAULT_KEY_FILE = Path(__file__).resolve().parents[1] / ".cache" / "dev-jwt-key.pem"


class TokenError(Exception):
    """A token that does not authenticate anyone; ``reason`` says why, in a few words (never
    the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DevKey:
    """The signing key and its id (the RFC 7638 thumbprint of its public key, as ``kid``)."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @classmethod
    def generate(cls) -> DevKey:
        return cls.of(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def of(cls, private_key: rsa.RSAPrivateKey) -> DevKey:
        numbers = private_key.public_key().public_numbers()
        jwk = {"e": _b64uint(numbers.e), "kty": "RSA", "n": _b64uint(numbers.n)}
        canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
        return cls(private_key, _b64(hashlib.sha256(canonical).digest()))

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def key_file() -> Path:
    return Path(os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE)


_loaded: dict[Path, tuple[int, DevKey]] = {}
_loading = threading.Lock()


def load_key(path: Path | str | None = None) -> DevKey:
    """The development key in ``path`` (default :func:`key_file`), made there on first use.
    Reloaded when the file changes, so a server that runs on follows a new key."""
    path = Path(path) if path is not None else key_file()
    with _loading:
        if not path.exists():
            _create(path)
        stamp = path.stat().st_mtime_ns
        cached = _loaded.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise TokenError(f"{path} does not hold an RSA private key; delete it for a new one")
        key = DevKey.of(private_key)
        _loaded[path] = (stamp, key)
        return key


def _create(path: Path) -> None:
    """Write a new key to ``path`` at once and only if there is none: a second process making
    one at the same moment (``make token`` beside ``make run``) keeps the first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".dev-jwt-key.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(DevKey.generate().pem())
        with contextlib.suppress(FileExistsError):  # another process's key came first
            os.link(temp, path)  # atomic: never a half-written key, never two keys
    finally:
        os.unlink(temp)


def mint(
    sub: str,
    org_id: str,
    role: str | None = None,
    scope: str | Iterable[str] | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    *,
    claims: Mapping[str, Any] | None = None,
    now: float | None = None,
    key: DevKey | None = None,
) -> str:
    """A signed token for ``sub`` of organisation ``org_id``: a user's (``role``) or a
    service's (``scope``, one name or several). ``claims`` adds or replaces claims (tests use
    it for tokens the authorizer must refuse); ``now`` is the time it was issued."""
    key = key or load_key()
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "org_id": org_id,
        "iat": issued,
        "exp": issued + int(ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if role:
        payload["role"] = role
    if scope:
        payload["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    payload.update(claims or {})
    return jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def verify(token: str, *, key: DevKey | None = None) -> dict[str, Any]:
    """The claims of ``token`` once its algorithm, key, signature, issuer, audience and times
    are checked (as API Gateway's JWT authorizer does); :class:`TokenError` otherwise."""
    if not token:
        raise TokenError("no token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as err:
        raise TokenError(f"the token is malformed ({err})") from None
    algorithm = header.get("alg")
    if algorithm != ALGORITHM:  # none, HS256 with the public key as secret, ...
        raise TokenError(f"signing method {algorithm} is invalid")
    key = key or load_key()
    if header.get("kid") != key.kid:
        raise TokenError("the token was not signed by the local development key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.InvalidTokenError as err:
        raise TokenError(_reason(err)) from None
    return claims


def _reason(err: jwt.InvalidTokenError) -> str:
    match err:
        case jwt.ExpiredSignatureError():
            return "the token has expired"
        case jwt.ImmatureSignatureError():
            return "the token is not valid yet"
        case jwt.InvalidAudienceError():
            return "the token does not have a valid audience"
        case jwt.InvalidIssuerError():
            return "the token does not have a valid issuer"
        case jwt.MissingRequiredClaimError():
            return f"the token has no {err.claim} claim"
        case jwt.InvalidSignatureError():
            return "the token's signature is invalid"
        case jwt.InvalidAlgorithmError():
            return "the token's signing method is invalid"
        case jwt.DecodeError():
            return f"the token is malformed ({err})"
    return f"the token is invalid ({err})"


def default_subject(org_id: str, role: str | None, scope: str | None) -> str:
    """``admin@o1`` for a user's token, ``credits-meter@o1`` for a service's."""
    if role:
        return f"{role}@{org_id}"
    first = (scope or "service").split()[0]
    return f"{first.replace(':', '-')}@{org_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.dev_tokens",
        description="Print a development token for the local server (make run).",
    )
    parser.add_argument("--org", required=True, help="organisation id (the org_id claim)")
    parser.add_argument("--role", choices=ROLES, help="a user's role")
    parser.add_argument(
        "--scope", help=f"space-separated scopes of a service token ({', '.join(SCOPES)})"
    )
    parser.add_argument("--sub", help="subject (default: ROLE@ORG or SCOPE@ORG)")
    parser.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="lifetime in seconds (default 12h)"
    )
    args = parser.parse_args(argv)
    if not args.role and not (args.scope or "").split():
        parser.error("give --role or --scope (a token with neither authenticates nobody)")
    unknown = [s for s in (args.scope or "").split() if s.rsplit("/", 1)[-1] not in SCOPES]
    if unknown:
        parser.error(f"unknown scope {' '.join(unknown)} (known: {', '.join(SCOPES)})")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    if not args.org.strip():
        parser.error("--org must not be empty")
    sub = args.sub or default_subject(args.org, args.role, args.scope)
    print(mint(sub, args.org, role=args.role, scope=args.scope, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
