"""API Gateway HTTP API (payload format 2.0) events, as the local server, tests and the
benchmark hand them to the real Lambda handler."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode


@dataclass
class FakeContext:
    """The parts of a Lambda context the handlers and Powertools read."""

    function_name: str = "credit-meter-local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:credit-meter-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


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
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": hdrs,
        "queryStringParameters": params or None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": hdrs.get("user-agent", "credit-meter-local"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }
