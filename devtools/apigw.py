"""API Gateway HTTP API (payload format 2.0) events for tests and the benchmark: a convenience
front for :func:`devtools.local_server.build_event`, the one place such events are built."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from devtools.lambda_context import FakeLambdaContext as FakeContext
from devtools.local_server import build_event

__all__ = ["FakeContext", "http_event"]


def http_event(
    method: str,
    path: str,
    body: str | bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTP API v2 event. A dict body is sent as JSON with that content type."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if isinstance(body, dict):
        body = json.dumps(body)
        hdrs.setdefault("content-type", "application/json")
    raw = body.encode() if isinstance(body, str) else (body or b"")
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    target = f"{path}?{raw_query}" if raw_query else path
    return build_event(method=method, target=target, headers=list(hdrs.items()), body=raw)
