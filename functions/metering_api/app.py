"""The metering HTTP API (API Gateway HTTP API, payload v2): one resolver for every route of
:mod:`credit_meter.api.routes` (one module per capability). Each route: parse, one call into a
use case, respond. Errors become problem+json in :mod:`credit_meter.api.problems`.

Every route is behind one middleware (:func:`_authorized`): the caller comes from the JWT
authorizer's claims, :data:`credit_meter.api.access.RULES` says whether it may use the route, and
the wallet or organisation in the path must be its own (docs/access.md).

This is the hot path, so it loads no X-Ray SDK (≈370 ms to import): the function is traced by
Lambda's active tracing; the off-path ledger projector uses Powertools' Tracer.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from credit_meter.api import access, problems
from credit_meter.api.body import decoded_path
from credit_meter.api.routes import (
    controls,
    grants,
    metering,
    reports,
    test_clock,
    topups,
    wallets,
)
from credit_meter.api.routes.base import metrics, router, valid_member, valid_org, valid_wallet
from credit_meter.core.errors import DomainError, InsufficientCredits, SpendingLimitReached
from credit_meter.storage.test_clock import test_mode, with_test_clock

# Importing the route modules registers their routes on the one router.
ROUTE_MODULES = (wallets, metering, grants, reports, topups, controls, test_clock)

logger = Logger()
app = APIGatewayHttpResolver()
app.include_router(router)

# -- who may call what ------------------------------------------------------------------------

_PUT_WALLET = "PUT /v1/wallets/{wallet_id}"  # may name a wallet that does not exist yet
_PATH_IDS = {"wallet_id": valid_wallet, "org_id": valid_org, "member_id": valid_member}


def _route_key(app: APIGatewayHttpResolver) -> str | None:
    """The API Gateway route key ("GET /v1/wallets/{wallet_id}") of the route Powertools
    matched, from the registered route itself (its path in OpenAPI form, ``{wallet_id}``),
    not from anything the client sent (the event's ``routeKey`` included). None when no
    route matched: Powertools then runs the middleware for a not-found route it makes on the
    spot, whose path is the request's own, so only a route registered on the resolver
    (compared by identity) counts."""
    route = app.context.get("_route")
    if route is None or not any(route is r for r in (*app._static_routes, *app._dynamic_routes)):
        return None
    return f"{route.method} {route.openapi_path}"


def _authorized(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every route: who calls (401 without valid claims), whether RULES let them use the route
    (403), and whether the wallet or organisation in the path is theirs (otherwise it does
    not exist for them: 404, word for word as a missing one). Raised errors reach the
    exception handlers below like a handler's own."""
    key = _route_key(app)
    if key is None:  # no such route: the 404 says nothing about anyone's data
        return next_middleware(app)
    if key in test_clock.ROUTES and not test_mode():  # not a route outside test mode
        return problems.not_found(app.current_event.path)
    principal = access.principal_of(app.current_event.raw_event)
    params = app.request.path_parameters
    grant = access.authorize(principal, key, params)
    for name, well_formed in _PATH_IDS.items():  # a malformed id is 422 whether or not it exists
        if name in params:
            well_formed(params[name])
    tenancy = access.Tenancy()
    if "wallet_id" in params:
        tenancy.wallet(principal, params["wallet_id"], creating=key == _PUT_WALLET)
    if "org_id" in params:
        tenancy.org(principal, params["org_id"])
    app.append_context(grant=grant)
    return next_middleware(app)


app.use(middlewares=[_authorized])

# -- errors -----------------------------------------------------------------------------------


def _refused(error: DomainError) -> None:
    if isinstance(error, InsufficientCredits):
        metrics.add_metric(name="HoldsRefused", unit=MetricUnit.Count, value=1)
    elif isinstance(error, SpendingLimitReached):  # the owner's cap (or a member's budget)
        metrics.add_metric(name="LimitRefusals", unit=MetricUnit.Count, value=1)


problems.install(app, logger, _refused)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@with_test_clock
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(decoded_path(event), context)
