"""API Gateway's JWT authorizer, as the local server plays it (:mod:`devtools.local_server`):
a request's bearer token is verified with :func:`devtools.dev_tokens.verify` and its claims
become the event's ``requestContext.authorizer``, written as API Gateway writes them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from devtools import dev_tokens
from devtools.http_front import HttpResponse


class Unauthorized(Exception):
    """The authorizer refused a request: ``challenge`` is its ``www-authenticate`` header,
    ``reason`` what the server logs."""

    def __init__(self, reason: str, challenge: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.challenge = challenge

    def response(self) -> HttpResponse:
        """API Gateway's answer: the function is not invoked."""
        body = json.dumps({"message": "Unauthorized"}, separators=(",", ":")).encode()
        headers = [("content-type", "application/json"), ("www-authenticate", self.challenge)]
        return HttpResponse(401, headers, body)


class JwtAuthorizer:
    """API Gateway's JWT authorizer (identity source ``$request.header.Authorization``) with
    :func:`devtools.dev_tokens.verify` for the issuer's keys, issuer and audience."""

    def __init__(self, verify: Callable[[str], dict[str, Any]] = dev_tokens.verify) -> None:
        self.verify = verify

    def __call__(self, headers: dict[str, str]) -> dict[str, Any]:
        """The event's ``requestContext.authorizer`` for a request with these (lower-cased)
        headers; :class:`Unauthorized` when there is no valid token."""
        value = headers.get("authorization")
        if value is None or not value.strip():
            raise Unauthorized("no Authorization header", "Bearer")
        token = value.strip()
        scheme, _, rest = token.partition(" ")
        if scheme.lower() == "bearer":  # the token alone is accepted too, as API Gateway does
            token = rest.strip()
        try:
            claims = self.verify(token)
        except dev_tokens.TokenError as err:
            # API Gateway's challenge; the description is its wording where AWS documents one
            # ("the token does not have a valid audience"), dev_tokens' otherwise.
            description = err.reason.replace('"', "'")
            challenge = f'Bearer scope="" error="invalid_token" error_description="{description}"'
            raise Unauthorized(err.reason, challenge) from None
        return authorizer_context(claims)


def authorizer_context(claims: Mapping[str, Any]) -> dict[str, Any]:
    """``requestContext.authorizer`` as API Gateway's JWT authorizer fills it from a verified
    token's claims: every claim value a string (``"1700000000"``, ``"true"``, a list as
    ``"[a b]"``), and ``scopes`` the ``scope`` claim split (None without one)."""
    strings = {name: _claim_text(value) for name, value in claims.items()}
    return {"jwt": {"claims": strings, "scopes": _scopes(claims)}}


def _claim_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_claim_text(v)}" for k, v in sorted(value.items())) + "]"
    return json.dumps(value)


def _scopes(claims: Mapping[str, Any]) -> list[str] | None:
    """The token's scopes, from ``scope`` (space-separated) or ``scp``; None without either."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return None
