"""API Gateway HTTP API (payload format 2.0) events for tests and the benchmark: a convenience
front for :func:`devtools.local_server.build_event`, the one place such events are built.

A caller's token is given as its claims: :func:`token_claims` writes them as an identity
provider would, and ``http_event(..., claims=...)`` puts them where API Gateway's JWT
authorizer does, once it has verified the token (``requestContext.authorizer.jwt``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from devtools.lambda_context import FakeLambdaContext as FakeContext
from devtools.local_server import authorizer_context, build_event

__all__ = ["FakeContext", "http_event", "token_claims"]


def token_claims(
    sub: str,
    org_id: str | None = None,
    role: str | None = None,
    scopes: Iterable[str] = (),
) -> dict[str, str]:
    """The claims of a token: ``sub``, ``org_id`` and ``role`` when given, and the scopes as
    the space-separated ``scope`` claim (as an OAuth 2 server writes it)."""
    claims = {"sub": sub}
    if org_id is not None:
        claims["org_id"] = org_id
    if role is not None:
        claims["role"] = role
    listed = " ".join(scopes)
    if listed:
        claims["scope"] = listed
    return claims


def http_event(
    method: str,
    path: str,
    body: str | bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
    claims: Mapping[str, Any] | None = None,
    scopes: Iterable[str] | None = None,
) -> dict[str, Any]:
    """An HTTP API v2 event. A dict body is sent as JSON with that content type.

    ``claims``: a verified token's claims, placed as the JWT authorizer places them
    (``requestContext.authorizer.jwt.claims``, every value a string); ``scopes`` defaults to
    the ``scope`` claim split, as API Gateway passes it. Without ``claims`` the event carries
    no authorizer at all (a request without a token)."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if isinstance(body, dict):
        body = json.dumps(body)
        hdrs.setdefault("content-type", "application/json")
    raw = body.encode() if isinstance(body, str) else (body or b"")
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    target = f"{path}?{raw_query}" if raw_query else path
    event = build_event(method=method, target=target, headers=list(hdrs.items()), body=raw)
    if claims is not None:
        context = authorizer_context(claims)  # as the local server passes a verified token
        if scopes is not None:
            context["jwt"]["scopes"] = list(scopes)
        event["requestContext"]["authorizer"] = context
    return event
