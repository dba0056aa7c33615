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
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devtools import ddb_local, dev_tokens, lambda_pool, table
from devtools import local_functions as fn
from devtools.gateway import (
    API_FUNCTION_ID,
    BYOK_FUNCTION_ID,
    OPEN_WITHOUT_AUTHORIZERS,
    WEBHOOK_FUNCTION_ID,
    Route,
    build_event,
    function_environment_from_template,
    match_route,
    response_from_result,
    routes_from_template,
    static_ui,
)
from devtools.http_front import GatewayServer, HttpResponse, json_response, make_http_server
from devtools.jwt_authorizer import JwtAuthorizer, Unauthorized, authorizer_context
from devtools.lambda_context import FakeLambdaContext
from devtools.lambda_pool import LambdaPool, PooledFunction

# What callers (tests, devtools.apigw) import from here, where it was all defined at first.
__all__ = [
    "API_FUNCTION_ID",
    "BYOK_FUNCTION_ID",
    "OPEN_WITHOUT_AUTHORIZERS",
    "WEBHOOK_FUNCTION_ID",
    "ApiGatewayEmulator",
    "HttpResponse",
    "JwtAuthorizer",
    "Route",
    "Unauthorized",
    "authorizer_context",
    "build_event",
    "function_environment_from_template",
    "local_stack",
    "main",
    "make_http_server",
    "match_route",
    "response_from_result",
    "routes_from_template",
]

log = logging.getLogger("devtools.local_server")

Handler = Callable[[dict[str, Any], Any], Any]

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
        if (page := static_ui(method, target)) is not None:
            return page
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
    # Test clocks (POST /v1/test-clock) are on locally unless TEST_MODE says otherwise.
    os.environ.setdefault("TEST_MODE", "true")
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
