"""Run the Credit Meter HTTP API locally: ``python -m devtools.local_server`` (or ``make run``).

* Storage: DynamoDB Local (in memory) when Java is available, otherwise moto's
  in-process server; either way the table is created from ``template.yaml``.
* HTTP: each request becomes an API Gateway HTTP API (payload format 2.0) event
  for ``metering_api.app.handler``; routes come from the template, so an unknown
  route (or method) answers 404 exactly as API Gateway would. The front end
  (:mod:`devtools.http_front`) answers what API Gateway answers itself: 400 for a bad
  ``Content-Length``, 413 over the 10 MB payload limit, all as JSON.
* Functions run in worker processes (:mod:`devtools.lambda_pool`; ``LOCAL_WORKERS``,
  default 4, or ``--workers``): each imports the handlers once and serves one invocation
  at a time, as a warm Lambda execution environment does, so concurrent requests run at
  the same time without sharing module state or log context. ``--workers 0`` runs them
  in the server's own process instead, one at a time (e.g. to use a debugger).
* Stream: a background :class:`~devtools.stream_pump.StreamPump` feeds the
  table's stream to ``ledger_projector.app.handler``.
* Schedule: ``hold_sweeper.app.handler`` runs every ``LOCAL_SWEEP_SECONDS``
  (default 60, as in the cloud; 0 turns it off) with the schedule's input.
* Resets: ``monthly_reset.app.dispatch`` runs every ``LOCAL_RESET_SECONDS``
  (default 60; every 5 minutes in the cloud; 0 turns it off). What it sends to
  the reset queue is handed straight to ``monthly_reset.app.handler`` as an SQS
  batch event (:class:`devtools.local_functions.LocalResetQueue` stands in for SQS).

* Alerts: a second stream consumer runs ``alerts.app.handler`` (alerts and auto top-up, as
  in the template). With no event bus or topic, alerts go to the log and, one JSON line
  each, to ``ALERTS_FILE`` (default ``.cache/alerts.jsonl``, emptied at start-up).
* Auth: every route but those the template opens (``Auth: Authorizer: NONE``: Stripe's webhook)
  wants ``Authorization: Bearer <token>``, verified as API Gateway's JWT authorizer does, with
  the local development key, issuer and audience of :mod:`devtools.dev_tokens` (``make token``
  mints one). A valid token's claims reach the handler in
  ``requestContext.authorizer.jwt``; any other request gets API Gateway's
  ``401 {"message":"Unauthorized"}`` and the handler is not invoked.
* Stripe: ``POST /v1/webhooks/stripe`` goes to ``stripe_webhook.app.handler`` (its own
  function, as in the template).
  Unless ``STRIPE_API_BASE`` is set, a local stand-in for Stripe's API
  (:mod:`devtools.fake_stripe`) serves checkouts and payments on 127.0.0.1:12111
  (``LOCAL_STRIPE_PORT``), with the test key ``sk_test_local_fake`` and the webhook secret
  ``whsec_local_fake``; ``python -m devtools.stripe_webhook`` pays a checkout and posts
  Stripe's signed events.

Environment: ``PORT`` (default 3000), ``HOST`` (default 127.0.0.1),
``LOCAL_STRIPE_PORT`` (default 12111), ``LOCAL_WORKERS`` (default 4). The
environment of the functions (TABLE_NAME, Powertools settings, ...) is set from
the template before the workers start, with fake AWS credentials.
Needs ``layers/credit_meter``, ``functions`` and the repository root on
``PYTHONPATH`` (``make run`` sets it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devtools import ddb_local, dev_tokens, lambda_pool, table
from devtools import local_functions as fn
from devtools.http_front import GatewayServer, HttpResponse, json_response, make_http_server
from devtools.lambda_context import FAKE_ACCOUNT_ID, FakeLambdaContext
from devtools.lambda_pool import LambdaPool, PooledFunction

log = logging.getLogger("devtools.local_server")

Handler = Callable[[dict[str, Any], Any], Any]

API_FUNCTION_ID = "MeteringApiFunction"
WEBHOOK_FUNCTION_ID = "StripeWebhookFunction"
BYOK_FUNCTION_ID = "ByokApiFunction"
LOCAL_STRIPE_KEY = "sk_test_local_fake"  # not secrets: the local stand-in's test values
LOCAL_WEBHOOK_SECRET = "whsec_local_fake"
DEFAULT_TABLE_NAME = "credit-meter-local"
DEFAULT_ALERTS_FILE = Path(__file__).resolve().parents[1] / ".cache" / "alerts.jsonl"
# BYOK keys are envelope-encrypted; locally, without KMS, under this development master key
# (credit_meter.byok.envelope.LocalKeys makes it on first use).
DEFAULT_BYOK_KEY_FILE = Path(__file__).resolve().parents[1] / ".cache" / "byok-local.key"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": ddb_local.FAKE_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": ddb_local.FAKE_SECRET_ACCESS_KEY,
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": ddb_local.FAKE_REGION,
    "AWS_REGION": ddb_local.FAKE_REGION,
}


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


class ApiGatewayEmulator:
    """Dispatch HTTP requests to a Lambda handler as API Gateway HTTP API would. With an
    ``authorizer``, a route that is not open gets the handler only with a valid token."""

    def __init__(
        self,
        handler: Handler,
        routes: list[Route] | None = None,
        others: Sequence[tuple[list[Route], Handler]] = (),
        authorizer: Callable[[dict[str, str]], dict[str, Any]] | None = None,
    ) -> None:
        self.handler = handler
        self.routes = routes
        self.others = list(others)  # more functions behind the same API, by their routes
        self.authorizer = authorizer
        # A handler run in this process is one Lambda execution environment: one invocation at
        # a time, since handlers keep per-request state in module globals (Powertools' resolver
        # holds the current event). A pooled one runs in its own worker processes, as many at
        # once as the pool has workers.
        self._invoke = threading.Lock()

    def __call__(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        route_key, path_parameters = "$default", None
        handler = self.handler
        route: Route | None = None
        if self.routes is not None:
            path = urlsplit(target).path or "/"
            matched = match_route(self.routes, method, path)
            for routes, other in self.others:
                if matched is None and (matched := match_route(routes, method, path)):
                    handler = other
            if matched is None:
                return json_response(404, "Not Found")
            route, path_parameters = matched
            route_key = route.key
        event = build_event(
            method=method,
            target=target,
            headers=headers,
            body=body,
            source_ip=source_ip,
            route_key=route_key,
            path_parameters=path_parameters,
        )
        if self.authorizer is not None and not (route is not None and route.open):
            try:
                event["requestContext"]["authorizer"] = self.authorizer(event["headers"])
            except Unauthorized as refused:
                log.info("401 %s %s: %s", method.upper(), event["rawPath"], refused.reason)
                return refused.response()
        context = FakeLambdaContext(
            function_name="credit-meter-metering-api",
            aws_request_id=event["requestContext"]["requestId"],
        )
        try:
            if isinstance(handler, PooledFunction):
                result = handler(event, context)
            else:
                with self._invoke:
                    result = handler(event, context)
            return response_from_result(result)
        except Exception:
            traceback.print_exc()
            return json_response(500, "Internal Server Error")


# --------------------------------------------------------------------------
# Storage backend
# --------------------------------------------------------------------------


@dataclass
class Backend:
    kind: str
    endpoint: str
    _stop: Callable[[], None]

    def stop(self) -> None:
        self._stop()


def start_backend(prefer: str = "auto") -> Backend:
    """DynamoDB Local when Java is available (or ``prefer='ddb-local'``), else moto."""
    if prefer == "ddb-local" or (prefer == "auto" and ddb_local.java_available()):
        proc, endpoint = ddb_local.start()
        return Backend("DynamoDB Local (in memory)", endpoint, lambda: ddb_local.stop(proc))

    if prefer == "auto":
        print(
            "WARNING: Java was not found, so DynamoDB Local cannot run; falling back to "
            "moto's in-process DynamoDB emulation (less faithful: conditions, transactions "
            "and streams may differ from DynamoDB). Install Java 17+ for DynamoDB Local.",
            file=sys.stderr,
            flush=True,
        )
    from moto.server import ThreadedMotoServer

    port = ddb_local.free_port()
    moto_server = ThreadedMotoServer(ip_address=ddb_local.HOST, port=port, verbose=False)
    moto_server.start()
    return Backend("moto server (in process)", f"http://{ddb_local.HOST}:{port}", moto_server.stop)


def configure_environment(endpoint: str, table_name: str) -> None:
    """Function environment from the template plus local overrides (before imports)."""
    for name, value in function_environment_from_template().items():
        os.environ.setdefault(name, value)
    os.environ.update(FAKE_ENV)
    os.environ["TABLE_NAME"] = table_name
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = endpoint
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    # No CloudWatch locally: EMF metric lines would only crowd the console (and with
    # --workers 0 invocations share one process, whose Metrics buffer would mix them).
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.pop("AWS_PROFILE", None)
    os.environ.setdefault("STRIPE_API_KEY", LOCAL_STRIPE_KEY)
    os.environ.setdefault("STRIPE_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET)
    # Alerts go to the local sink (credit_meter.controls.notify), never to a real bus or topic.
    os.environ.pop("EVENT_BUS_NAME", None)
    os.environ.pop("ALERTS_TOPIC_ARN", None)
    os.environ.pop("BYOK_KEY_ID", None)  # no KMS locally
    os.environ.setdefault("BYOK_LOCAL_KEY_FILE", str(DEFAULT_BYOK_KEY_FILE))
    if not os.environ.get("ALERTS_FILE"):
        DEFAULT_ALERTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_ALERTS_FILE.write_text("")  # the data is in memory: so are last run's alerts
        os.environ["ALERTS_FILE"] = str(DEFAULT_ALERTS_FILE)


# --------------------------------------------------------------------------
# Wiring
# --------------------------------------------------------------------------


def _webhook_poster(port_of: Callable[[], int]) -> Callable[[str, dict[str, Any]], None]:
    """Deliver what the Stripe stand-in announces to the local webhook (on the port the server
    serves, ``port_of()``), signed, a moment later and from another thread (as Stripe does,
    after answering the API call)."""

    def deliver(event_type: str, obj: dict[str, Any]) -> None:
        from devtools import stripe_events

        def post() -> None:
            time.sleep(0.2)
            url = f"http://127.0.0.1:{port_of()}/v1/webhooks/stripe"
            try:
                event = stripe_events.event(event_type, obj)
                stripe_events.post(url, event, os.environ["STRIPE_WEBHOOK_SECRET"])
            except Exception as err:  # the local API may be stopping
                log.warning("webhook delivery of %s failed: %s", event_type, err)

        threading.Thread(target=post, daemon=True).start()

    return deliver


@dataclass
class _Triggers:
    """What runs the functions besides HTTP: stream consumers and schedules."""

    pumps: list[Any] = field(default_factory=list)
    schedules: list[fn.Schedule] = field(default_factory=list)

    def start(self) -> None:
        for starter in [*self.pumps, *self.schedules]:
            starter.start()

    def stop(self) -> None:
        for schedule in self.schedules:
            schedule.stop()
        for pump in self.pumps:
            pump.stop()


def _triggers(
    endpoint: str,
    stream_arn: str | None,
    projector: Handler | None,
    pool: LambdaPool | None,
    sweep_seconds: float,
    reset_seconds: float,
) -> _Triggers:
    from devtools.stream_pump import StreamPump

    triggers = _Triggers()
    if stream_arn is not None:
        projector = projector or fn.handler_for(fn.PROJECTOR, pool)
        triggers.pumps.append(StreamPump(endpoint, stream_arn, projector))
        # The second consumer of the same stream, as in the template (its filter: wallet
        # writes; the handler ignores every other record).
        triggers.pumps.append(
            StreamPump(
                endpoint,
                stream_arn,
                fn.handler_for(fn.ALERTS, pool),
                context_factory=lambda: FakeLambdaContext(
                    function_name=fn.ALERTS.name, timeout_seconds=30
                ),
            )
        )
    if sweep_seconds > 0:
        sweeper = fn.handler_for(fn.SWEEPER, pool)
        triggers.schedules.append(
            fn.Schedule(sweeper, sweep_seconds, "sweep-holds", fn.SWEEPER.name)
        )
    if reset_seconds > 0:
        dispatcher = fn.handler_for(fn.RESET_DISPATCHER, pool)
        triggers.schedules.append(
            fn.Schedule(dispatcher, reset_seconds, "monthly-reset", fn.RESET_DISPATCHER.name)
        )
    return triggers


def _start_pool(workers: int, functions: list[fn.Function]) -> LambdaPool | None:
    """The worker processes (none for ``workers=0``), each importing ``functions`` once."""
    if workers <= 0:
        return None
    return LambdaPool(workers, [f.entry for f in functions]).start()


@contextlib.contextmanager
def local_stack(
    *,
    backend: str = "auto",
    table_name: str = DEFAULT_TABLE_NAME,
    api_handler: Handler | None = None,
    projector_handler: Handler | None = None,
    host: str = "127.0.0.1",
    port: int = 3000,
    pump: bool = True,
    sweep_seconds: float | None = None,
    reset_seconds: float | None = None,
    authorize: bool = True,
    workers: int | None = None,
) -> Iterator[tuple[GatewayServer, Backend]]:
    """Backend + table + worker processes + stream pump + schedules + (not yet serving) HTTP
    server; tears all down. ``sweep_seconds`` / ``reset_seconds`` (default
    ``$LOCAL_SWEEP_SECONDS`` / ``$LOCAL_RESET_SECONDS`` or 60; 0 turns one off) are how often
    the hold sweeper and the reset dispatcher run. ``authorize`` (default on): routes want a
    development token (:class:`JwtAuthorizer`), as API Gateway's JWT authorizer does in the cloud.

    The functions run in ``workers`` worker processes (default ``$LOCAL_WORKERS`` or 4; see
    :mod:`devtools.lambda_pool`), started once the environment is configured; ``workers=0``
    runs them in this process, one invocation at a time. ``api_handler`` /
    ``projector_handler``, when given, run in this process instead of the template's.
    """
    saved_environ = dict(os.environ)
    server: GatewayServer | None = None
    fake_stripe = None
    if not os.environ.get("STRIPE_API_BASE"):
        from devtools.fake_stripe import FakeStripe

        fake_stripe = FakeStripe(
            int(os.environ.get("LOCAL_STRIPE_PORT") or 12111),
            on_event=_webhook_poster(lambda: server.server_address[1] if server else port),
        ).start()
        os.environ["STRIPE_API_BASE"] = fake_stripe.base_url
    store = start_backend(backend)
    pool: LambdaPool | None = None
    triggers = _Triggers()
    if sweep_seconds is None:
        sweep_seconds = float(os.environ.get("LOCAL_SWEEP_SECONDS") or 60)
    if reset_seconds is None:
        reset_seconds = float(os.environ.get("LOCAL_RESET_SECONDS") or 60)
    try:
        configure_environment(store.endpoint, table_name)
        description = table.create_table(ddb_local.client(store.endpoint), table_name)
        wanted = [
            *([] if api_handler else [fn.API]),
            fn.WEBHOOK,
            fn.BYOK,
            *([fn.ALERTS] if pump else []),
            *([fn.PROJECTOR] if pump and not projector_handler else []),
            *([fn.SWEEPER] if sweep_seconds > 0 else []),
            *([fn.RESET_DISPATCHER] if reset_seconds > 0 else []),
        ]
        pool = _start_pool(lambda_pool.default_size() if workers is None else workers, wanted)
        stream = description["LatestStreamArn"] if pump else None
        triggers = _triggers(
            store.endpoint, stream, projector_handler, pool, sweep_seconds, reset_seconds
        )
        triggers.start()
        authorizer = None
        if authorize:
            dev_tokens.load_key()  # made now, if new, rather than on the first request
            authorizer = JwtAuthorizer()
        others = [
            (routes_from_template(function_id=f.template_id), fn.handler_for(f, pool))
            for f in (fn.WEBHOOK, fn.BYOK)
        ]
        emulator = ApiGatewayEmulator(
            api_handler or fn.handler_for(fn.API, pool), routes_from_template(), others, authorizer
        )
        server = make_http_server(emulator, host, port)
        yield server, store
    finally:
        if server is not None:
            server.server_close()
        triggers.stop()
        if pool is not None:
            pool.stop()
        store.stop()
        if fake_stripe is not None:
            fake_stripe.stop()
        os.environ.clear()
        os.environ.update(saved_environ)


def _print_banner(args: argparse.Namespace, store: Backend, host: str, port: int) -> None:
    stripe_api = os.environ["STRIPE_API_BASE"]
    lines = [f"Storage: {store.kind} at {store.endpoint}, table {args.table_name!r}"]
    if args.workers > 0:
        lines.append(f"Workers: {args.workers} processes run the functions, one invocation each")
    else:
        lines.append("Workers: none; the functions run in this process, one at a time")
    if not args.no_stream:
        lines.append("Stream:  ledger_projector.app.handler fed from the table's stream")
        lines.append(
            "Alerts:  alerts.app.handler fed from the table's stream; alerts are logged "
            f"and appended to {os.environ['ALERTS_FILE']}"
        )
    lines += [
        "Sweeper: hold_sweeper.app.handler on its schedule",
        "Resets:  monthly_reset.app.dispatch -> handler on their schedule",
        f"Stripe:  API at {stripe_api}; webhook POST http://{host}:{port}/v1/webhooks/stripe",
        f"         make webhook PORT={port} LOCAL_STRIPE_PORT={urlsplit(stripe_api).port} "
        'ARGS="pay cs_test_..."',
        # The issuer is a fixed name in the tokens (dev_tokens.ISSUER), not this server's address.
        f"Auth:    bearer tokens from: make -s token ROLE=admin ORG=o1 (key "
        f"{dev_tokens.key_file()}, issuer name {dev_tokens.ISSUER!r} on any port)",
        f"Credit Meter API listening on http://{host}:{port}  (Ctrl-C to stop)",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.local_server", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    parser.add_argument("--backend", choices=("auto", "ddb-local", "moto"), default="auto")
    parser.add_argument("--table-name", default=DEFAULT_TABLE_NAME)
    parser.add_argument("--no-stream", action="store_true", help="do not run the projector")
    parser.add_argument(
        "--workers",
        type=int,
        default=lambda_pool.default_size(),
        help="worker processes running the functions ($LOCAL_WORKERS, default 4; 0: run them "
        "in the server's process, one invocation at a time)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):  # werkzeug: moto's server
        logging.getLogger(noisy).setLevel(logging.WARNING)

    stopping = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            print(f"\nReceived {signal.Signals(signum).name}, shutting down...", flush=True)
            threading.Thread(target=server.shutdown, daemon=True).start()

    with local_stack(
        backend=args.backend,
        table_name=args.table_name,
        host=args.host,
        port=args.port,
        pump=not args.no_stream,
        workers=args.workers,
    ) as (server, store):
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        host, port = str(server.server_address[0]), int(server.server_address[1])
        _print_banner(args, store, host, port)
        server.serve_forever(poll_interval=0.25)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
