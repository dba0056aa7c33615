"""API Gateway HTTP API's side of the local server (:mod:`devtools.local_server`): the routes
of ``template.yaml`` (which function, open or behind the authorizer), the payload format 2.0
event a request becomes, and the HTTP response a handler's result becomes."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devtools import table
from devtools.http_front import HttpResponse
from devtools.lambda_context import FAKE_ACCOUNT_ID

API_FUNCTION_ID = "MeteringApiFunction"
WEBHOOK_FUNCTION_ID = "StripeWebhookFunction"
BYOK_FUNCTION_ID = "ByokApiFunction"


# --------------------------------------------------------------------------
# Routes and function environment, from template.yaml
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    pattern: re.Pattern[str]
    open: bool = False  # no authorizer: the request reaches the function without a token

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @classmethod
    def parse(cls, method: str, path: str, *, open: bool = False) -> Route:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                if name.endswith("+"):
                    regex += f"(?P<{name[:-1]}>.+)"
                else:
                    regex += f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(part)
        return cls(method.upper(), path, re.compile(f"^{regex}$"), open)


# Open while the template names no authorizer at all: Stripe signs its webhook, it sends no token.
OPEN_WITHOUT_AUTHORIZERS = frozenset({"POST /v1/webhooks/stripe"})


def routes_from_template(
    path: Path | str = table.DEFAULT_TEMPLATE, function_id: str = API_FUNCTION_ID
) -> list[Route]:
    """The HttpApi routes of ``function_id`` in the template, each open or not as API Gateway
    would make it: a route's ``Auth: Authorizer`` (``NONE``: open), else its API's
    ``DefaultAuthorizer``. A template that declares no authorizer yet leaves open only
    :data:`OPEN_WITHOUT_AUTHORIZERS`."""
    template = table.load_template(path)
    resources = template.get("Resources") or {}
    routes = []
    for event in (resources[function_id].get("Properties", {}).get("Events") or {}).values():
        if event.get("Type") == "HttpApi":
            props = event.get("Properties") or {}
            method, route_path = str(props.get("Method", "ANY")).upper(), props.get("Path", "/")
            api_auth = _api_auth(template, props.get("ApiId"))
            authorizer = (props.get("Auth") or {}).get("Authorizer")
            if authorizer is None:
                authorizer = api_auth.get("DefaultAuthorizer")
            if authorizer is None and not api_auth.get("Authorizers"):
                is_open = f"{method} {route_path}" in OPEN_WITHOUT_AUTHORIZERS
            else:
                is_open = authorizer in (None, "NONE")
            routes.append(Route.parse(method, route_path, open=is_open))
    return routes


def _api_auth(template: dict[str, Any], api_id: Any) -> dict[str, Any]:
    """The ``Auth`` of the HttpApi an event names (``ApiId: !Ref X``), or of SAM's implicit API
    (``Globals.HttpApi``) when it names none."""
    if isinstance(api_id, dict) and isinstance(api_id.get("Ref"), str):
        api = (template.get("Resources") or {}).get(api_id["Ref"]) or {}
        auth = (api.get("Properties") or {}).get("Auth")
    else:
        auth = (template.get("Globals") or {}).get("HttpApi", {}).get("Auth")
    return auth if isinstance(auth, dict) else {}


def function_environment_from_template(path: Path | str = table.DEFAULT_TEMPLATE) -> dict[str, str]:
    """Literal environment variables from ``Globals.Function`` (intrinsics skipped)."""
    template = table.load_template(path)
    variables = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables")
        or {}
    )
    return {k: str(v) for k, v in variables.items() if isinstance(v, str | int | float | bool)}


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        if route.method not in (method.upper(), "ANY"):
            continue
        match = route.pattern.match(path)
        if match:
            return route, match.groupdict()
    return None


# --------------------------------------------------------------------------
# HTTP <-> API Gateway payload format 2.0
# --------------------------------------------------------------------------


def build_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    route_key: str = "$default",
    path_parameters: dict[str, str] | None = None,
    protocol: str = "HTTP/1.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for one request."""
    url = urlsplit(target)
    raw_path = url.path or "/"

    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if lname == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[lname] = f"{merged[lname]},{value}" if lname in merged else value

    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value

    now = time.time()
    request_id = str(uuid.uuid4())
    host = merged.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": url.query,
        "headers": merged,
        "requestContext": {
            "accountId": FAKE_ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def response_from_result(result: Any) -> HttpResponse:
    """Translate a handler result the way API Gateway does for payload format 2.0."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway infers a 200 JSON response from any other return value.
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], text.encode())

    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", cookie))

    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode("utf-8")
    return HttpResponse(int(result["statusCode"]), headers, body)


# --------------------------------------------------------------------------
# The web components' bundle and demo page (ui/, built by `make ui`), under /ui/
# --------------------------------------------------------------------------

UI_DIST = Path(__file__).resolve().parents[1] / "ui" / "dist"
_UI_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def static_ui(method: str, target: str, root: Path = UI_DIST) -> HttpResponse | None:
    """A file of the built web components for ``GET /ui/…``, from the API's own origin so that
    the demo page needs no CORS; ``None`` for every other request (the API's)."""
    path = urlsplit(target).path
    if method.upper() not in ("GET", "HEAD") or not (path == "/ui" or path.startswith("/ui/")):
        return None
    name = path.removeprefix("/ui").strip("/") or "index.html"
    file = (root / name).resolve()
    if not file.is_relative_to(root.resolve()) or not file.is_file():
        return HttpResponse(404, [("content-type", "text/plain")], b"not built: make ui\n")
    content_type = _UI_TYPES.get(file.suffix, "application/octet-stream")
    headers = [("content-type", content_type), ("cache-control", "no-store")]
    return HttpResponse(200, headers, file.read_bytes() if method.upper() == "GET" else b"")
