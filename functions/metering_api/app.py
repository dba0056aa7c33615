"""The metering HTTP API (API Gateway HTTP API, payload v2). Each route: parse, one call into
:mod:`credit_meter.metering.service`, respond. Errors become problem+json in :mod:`http_errors`.

Every route is behind one middleware (:func:`_authorized`): the caller comes from the JWT
authorizer's claims, :data:`credit_meter.api.access.RULES` says whether it may use the route, and
the wallet or organisation in the path must be its own (docs/access.md).

This is the hot path, so it loads no X-Ray SDK (≈370 ms to import): the function is traced by
Lambda's active tracing; the off-path ledger projector uses Powertools' Tracer.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from credit_meter.api import access, problems
from credit_meter.api.body import body_text, json_object
from credit_meter.api.models import (
    ID_PATTERN,
    AdjustmentIn,
    AdjustmentOut,
    BypassIn,
    ChargeIn,
    ChargeOut,
    CommitIn,
    CommitOut,
    GrantIn,
    GrantLineOut,
    GrantOut,
    GrantsOut,
    GrantsQuery,
    PricesOut,
    PromoCodeIn,
    PromoCodeOut,
    QuoteIn,
    QuoteOut,
    RedeemIn,
    ReferralIn,
    ReferralOut,
    ReleaseIn,
    ReleaseOut,
    RequestBody,
    ReservationOut,
    ReserveIn,
    TransactionOut,
    TransactionsCsvQuery,
    TransactionsOut,
    TransactionsQuery,
    TransferIn,
    TransferOut,
    VoidIn,
    VoidOut,
    WalletIn,
    WalletOut,
    dump,
)
from credit_meter.core.catalog import catalog
from credit_meter.core.errors import (
    DomainError,
    FieldProblem,
    GrantNotFound,
    InsufficientCredits,
    InvalidRequest,
    PaymentNotFound,
    SpendingLimitReached,
    WalletNotFound,
)
from credit_meter.core.ids import GRANT_ID
from credit_meter.core.wallets import Entry
from credit_meter.metering.service import Metering, Request

if TYPE_CHECKING:
    from credit_meter.billing.grants import Grants
    from credit_meter.billing.plans import Plans
    from credit_meter.billing.promotions import Promotions
    from credit_meter.billing.referrals import Referrals
    from credit_meter.billing.transfers import Transfers
    from credit_meter.controls.controls import Controls
    from credit_meter.payments.auto_topup import AutoTopups
    from credit_meter.payments.payments import Payments
    from credit_meter.payments.topups import Gateway
    from credit_meter.reports.reports import Reports

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

_WALLET_ID = re.compile(ID_PATTERN)  # organisation ids follow the same rule
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_PAYMENT_ID = re.compile(r"pi_[A-Za-z0-9_]{1,250}")
# A member id in a path: as in bodies, less "/" (a path cannot carry it).
_MEMBER_ID = re.compile(r"[A-Za-z0-9][\w.:@-]{0,63}")


def _service() -> Metering:
    return Metering()


# Plans, grants, transfers, promo codes and referrals are imported on first use, so the
# metering routes' cold start does not pay for them.


def _plans() -> Plans:
    from credit_meter.billing.plans import Plans

    return Plans()


def _grants() -> Grants:
    from credit_meter.billing.grants import Grants

    return Grants()


def _transfers() -> Transfers:
    from credit_meter.billing.transfers import Transfers

    return Transfers()


def _promotions() -> Promotions:
    from credit_meter.billing.promotions import Promotions

    return Promotions()


def _referrals() -> Referrals:
    from credit_meter.billing.referrals import Referrals

    return Referrals()


def _reports() -> Reports:
    from credit_meter.reports.reports import Reports

    return Reports()


def _controls() -> Controls:
    from credit_meter.controls.controls import Controls

    return Controls()


def _payments() -> Payments:
    from credit_meter.payments.payments import Payments

    return Payments()


def _auto_topups() -> AutoTopups:
    from credit_meter.payments.auto_topup import AutoTopups

    return AutoTopups()


def _gateway() -> Gateway:
    """Stripe's API: the SDK loads only for the routes that call it."""
    from credit_meter.payments.stripe_gateway import StripeGateway

    return StripeGateway()


def _wallet(wallet_id: str) -> str:
    if not _WALLET_ID.fullmatch(wallet_id):
        raise InvalidRequest([FieldProblem("wallet_id", "use 1-128 letters, digits, _ . : @ -")])
    return wallet_id


def _org(org_id: str) -> str:
    if not _WALLET_ID.fullmatch(org_id):
        raise InvalidRequest([FieldProblem("org_id", "use 1-128 letters, digits, _ . : @ -")])
    return org_id


def _no_query() -> None:
    """Routes without parameters refuse unknown ones, as the others do (422)."""
    unknown = sorted(app.current_event.query_string_parameters or {})
    if unknown:
        raise InvalidRequest(
            [FieldProblem(name, "is not a parameter of this route") for name in unknown]
        )


def _member(member_id: str) -> str:
    if not _MEMBER_ID.fullmatch(member_id):
        raise InvalidRequest(
            [
                FieldProblem(
                    "member_id", "use 1-64 letters, digits, _ . : @ / - (first a letter or digit)"
                )
            ]
        )
    return member_id


def _body[Body: BaseModel](model: type[Body], optional: bool = False) -> Body:
    event = app.current_event
    text = body_text(event.body, event.is_base64_encoded)
    raw = json_object(text, event.headers.get("content-type"), optional=optional)
    return model.model_validate(raw)


def _request(body: RequestBody, route: str) -> Request:
    key = app.current_event.headers.get("idempotency-key")
    if key is not None and not _KEY.fullmatch(key):
        raise InvalidRequest(
            [FieldProblem("Idempotency-Key", "use 1-255 visible ASCII characters")]
        )
    return Request(request_hash=body.request_hash(route), idempotency_key=key)


def _json(status: int, body: BaseModel) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=dump(body))


def _charged(credits: Decimal, replayed: bool) -> None:
    if not replayed:  # a retry's answer charged nothing new
        metrics.add_metric(name="CreditsCharged", unit=MetricUnit.Count, value=float(credits))


# -- who may call what ------------------------------------------------------------------------

_PUT_WALLET = "PUT /v1/wallets/{wallet_id}"  # may name a wallet that does not exist yet
_PATH_IDS = {"wallet_id": _wallet, "org_id": _org, "member_id": _member}


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


def _grant() -> access.Grant:
    """What the middleware allowed this request."""
    grant: access.Grant = app.context["grant"]
    return grant


# -- routes -----------------------------------------------------------------------------------


@app.put("/v1/wallets/<wallet_id>")
def put_wallet(wallet_id: str) -> Response[Any]:
    body = _body(WalletIn)
    org = _grant().principal.org  # a wallet is created in (or adopted by) the caller's org
    if body.org_id is not None and body.org_id != org:
        raise InvalidRequest([FieldProblem("org_id", "must be the organisation of your token")])
    created, view = _plans().put_wallet(
        _wallet(wallet_id), body.plan, body.allowance, body.anchor_day, org
    )
    return _json(201 if created else 200, WalletOut.of(view))


@app.put("/v1/wallets/<wallet_id>/bypass")
def put_bypass(wallet_id: str) -> Response[Any]:
    body = _body(BypassIn)
    return _json(200, WalletOut.of(_plans().set_bypass(_wallet(wallet_id), body.enabled)))


@app.get("/v1/wallets/<wallet_id>")
def get_wallet(wallet_id: str) -> Response[Any]:
    return _json(200, WalletOut.of(_service().get_wallet(_wallet(wallet_id))))


@app.post("/v1/wallets/<wallet_id>/reservations")
def reserve(wallet_id: str) -> Response[Any]:
    body = _body(ReserveIn)
    held = _service().reserve(
        _wallet(wallet_id),
        body.cost(),
        _request(body, "reserve"),
        body.feature,
        body.member_id,
        body.expires_in_seconds,
    )
    return _json(201, ReservationOut.of(held))


@app.post("/v1/wallets/<wallet_id>/reservations/<reservation_id>/commit")
def commit(wallet_id: str, reservation_id: str) -> Response[Any]:
    body = _body(CommitIn, optional=True)
    ended = _service().commit(
        _wallet(wallet_id), reservation_id, body.cost(), _request(body, "commit")
    )
    _charged(ended.charged, ended.replayed)
    return _json(200, CommitOut.of(ended))


@app.post("/v1/wallets/<wallet_id>/reservations/<reservation_id>/release")
def release(wallet_id: str, reservation_id: str) -> Response[Any]:
    body = _body(ReleaseIn, optional=True)
    ended = _service().release(_wallet(wallet_id), reservation_id, _request(body, "release"))
    return _json(200, ReleaseOut.of(ended))


@app.post("/v1/wallets/<wallet_id>/charges")
def charge(wallet_id: str) -> Response[Any]:
    body = _body(ChargeIn)
    done = _service().charge(
        _wallet(wallet_id), body.cost(), _request(body, "charge"), body.feature, body.member_id
    )
    _charged(done.charged, done.replayed)
    return _json(201, ChargeOut.of(done))


@app.post("/v1/wallets/<wallet_id>/quote")
def quote(wallet_id: str) -> Response[Any]:
    body = _body(QuoteIn)
    return _json(200, QuoteOut(credits=_service().quote(_wallet(wallet_id), body.lines())))


@app.post("/v1/wallets/<wallet_id>/grants")
def grant(wallet_id: str) -> Response[Any]:
    body = _body(GrantIn)
    granted = _grants().grant(
        _wallet(wallet_id),
        body.credits,
        body.source,
        _request(body, "grant"),
        body.expires_at,
        body.priority,
    )
    return _json(201, GrantOut.of(granted))


@app.get("/v1/wallets/<wallet_id>/grants")
def grants(wallet_id: str) -> Response[Any]:
    query = GrantsQuery.model_validate(app.current_event.query_string_parameters or {})
    lines, cursor = _grants().grants(_wallet(wallet_id), query.limit, query.cursor)
    return _json(200, GrantsOut(items=[GrantLineOut.of(g) for g in lines], next_cursor=cursor))


@app.post("/v1/wallets/<wallet_id>/grants/<grant_id>/void")
def void_grant(wallet_id: str, grant_id: str) -> Response[Any]:
    _body(VoidIn, optional=True)
    if not GRANT_ID.fullmatch(grant_id):
        raise GrantNotFound(f"grant {grant_id!r} does not exist")
    return _json(200, VoidOut.of(_grants().void_grant(_wallet(wallet_id), grant_id)))


@app.post("/v1/wallets/<wallet_id>/adjustments")
def adjust(wallet_id: str) -> Response[Any]:
    body = _body(AdjustmentIn)
    done = _grants().adjust(_wallet(wallet_id), body.credits, body.reason, _request(body, "adjust"))
    return _json(201, AdjustmentOut.of(done))


@app.post("/v1/wallets/<wallet_id>/transfers")
def transfer(wallet_id: str) -> Response[Any]:
    body = _body(TransferIn)
    try:
        access.Tenancy().wallet(_grant().principal, body.to_wallet_id)
    except WalletNotFound:  # another organisation's wallet: worded as billing words a missing one
        raise WalletNotFound(
            f"wallet {body.to_wallet_id!r} (to_wallet_id) does not exist"
        ) from None
    done = _transfers().transfer(
        _wallet(wallet_id),
        body.to_wallet_id,
        body.credits,
        body.reason,
        _request(body, "transfer"),
    )
    return _json(201, TransferOut.of(done))


@app.post("/v1/promo-codes")
def create_promo_code() -> Response[Any]:
    body = _body(PromoCodeIn)
    created, promo = _promotions().create_promo(body.promo())
    return _json(201 if created else 200, PromoCodeOut.of(promo))


@app.post("/v1/wallets/<wallet_id>/redeem")
def redeem(wallet_id: str) -> Response[Any]:
    body = _body(RedeemIn)
    granted = _promotions().redeem(_wallet(wallet_id), body.code, _request(body, "redeem"))
    return _json(201, GrantOut.of(granted))


@app.post("/v1/wallets/<wallet_id>/referral")
def referral(wallet_id: str) -> Response[Any]:
    body = _body(ReferralIn)
    return _json(
        201, ReferralOut.of(_referrals().refer(_wallet(wallet_id), body.referrer_wallet_id))
    )


def _activity(wallet_id: str, query: TransactionsQuery) -> tuple[list[Entry], str | None]:
    from credit_meter.reports.reports import ActivityFilter

    member = _grant().member_filter(query.member_id)  # a member: their own activity only
    where = ActivityFilter(query.day, query.type, member, query.feature)
    return _reports().activity(_wallet(wallet_id), where, query.limit, query.cursor)


@app.get("/v1/wallets/<wallet_id>/transactions")
def transactions(wallet_id: str) -> Response[Any]:
    query = TransactionsQuery.model_validate(app.current_event.query_string_parameters or {})
    entries, cursor = _activity(wallet_id, query)
    out = TransactionsOut(items=[TransactionOut.of(e) for e in entries], next_cursor=cursor)
    return _json(200, out)


@app.get("/v1/wallets/<wallet_id>/transactions.csv")
def transactions_csv(wallet_id: str) -> Response[Any]:
    from credit_meter.api.report_models import transactions_csv as to_csv

    query = TransactionsCsvQuery.model_validate(app.current_event.query_string_parameters or {})
    entries, cursor = _activity(wallet_id, query)
    headers = {"Content-Disposition": f'attachment; filename="{wallet_id}-transactions.csv"'}
    if cursor is not None:  # the next page: the same query from the cursor
        params = {**(app.current_event.query_string_parameters or {}), "cursor": cursor}
        # relative to the request's own path, whatever stage or base path the client used
        headers["Link"] = f'<?{urlencode(params)}>; rel="next"'
        headers["X-Next-Cursor"] = cursor
    return Response(
        status_code=200,
        content_type="text/csv; charset=utf-8",
        body=to_csv(entries),
        headers=headers,
    )


@app.get("/v1/wallets/<wallet_id>/usage/summary")
def usage_summary(wallet_id: str) -> Response[Any]:
    from credit_meter.api.report_models import SummaryOut

    _no_query()
    return _json(200, SummaryOut.of(_reports().summary(_wallet(wallet_id))))


@app.get("/v1/wallets/<wallet_id>/usage")
def usage_series(wallet_id: str) -> Response[Any]:
    from credit_meter.api.report_models import SeriesOut, SeriesQuery

    query = SeriesQuery.model_validate(app.current_event.query_string_parameters or {})
    series = _reports().series(
        _wallet(wallet_id), query.granularity, query.from_, query.to, query.group_by
    )
    return _json(200, SeriesOut.of(series))


@app.get("/v1/orgs/<org_id>/usage")
def org_usage(org_id: str) -> Response[Any]:
    from credit_meter.api.report_models import OrgUsageOut, OrgUsageQuery

    query = OrgUsageQuery.model_validate(app.current_event.query_string_parameters or {})
    return _json(200, OrgUsageOut.of(_reports().org_usage(_org(org_id), query.from_, query.to)))


@app.get("/v1/topups/offers")
def offers() -> Response[Any]:
    from credit_meter.api.topup_models import OffersOut

    return _json(200, OffersOut.of(catalog().topups))


@app.post("/v1/wallets/<wallet_id>/checkout")
def checkout(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import CheckoutIn, CheckoutOut

    body = _body(CheckoutIn)
    request = _request(body, "checkout")
    done = _payments().checkout(
        _wallet(wallet_id),
        body.pack,
        body.amount,
        body.currency,
        body.success_url,
        body.cancel_url,
        body.save_payment_method,
        request.idempotency_key,
        _gateway,
    )
    return _json(201, CheckoutOut.of(done))


@app.get("/v1/wallets/<wallet_id>/payments")
def payments(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import PaymentOut, PaymentsOut, PaymentsQuery

    query = PaymentsQuery.model_validate(app.current_event.query_string_parameters or {})
    lines, cursor = _payments().payments(_wallet(wallet_id), query.limit, query.cursor)
    items = [PaymentOut.of(p, wallet_id) for p in lines]
    return _json(200, PaymentsOut(items=items, next_cursor=cursor))


@app.get("/v1/wallets/<wallet_id>/payments/<payment_id>/invoice")
def invoice(wallet_id: str, payment_id: str) -> Response[Any]:
    if not _PAYMENT_ID.fullmatch(payment_id):
        raise PaymentNotFound(f"payment {payment_id!r} does not exist")
    link = _payments().invoice_link(_wallet(wallet_id), payment_id, _gateway)
    return Response(status_code=302, headers={"Location": link}, body="")


@app.put("/v1/wallets/<wallet_id>/auto-topup")
def put_auto_topup(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import AutoTopupIn, AutoTopupOut

    body = _body(AutoTopupIn)
    done = _auto_topups().set_auto_topup(
        _wallet(wallet_id),
        body.enabled,
        body.threshold,
        body.pack,
        body.customer_id,
        body.payment_method_id,
    )
    return _json(200, AutoTopupOut.of(done))


@app.get("/v1/wallets/<wallet_id>/auto-topup")
def get_auto_topup(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import AutoTopupOut

    return _json(200, AutoTopupOut.of(_auto_topups().auto_topup(_wallet(wallet_id))))


@app.put("/v1/wallets/<wallet_id>/limits")
def put_limits(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import LimitsIn, LimitsOut

    body = _body(LimitsIn)
    limits = _controls().set_limits(
        _wallet(wallet_id), body.alert_threshold, body.allowed_limit, body.currency
    )
    return _json(200, LimitsOut.of(limits, catalog().topups.fiat))


@app.get("/v1/wallets/<wallet_id>/limits")
def get_limits(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import LimitsOut

    return _json(200, LimitsOut.of(_controls().limits(_wallet(wallet_id)), catalog().topups.fiat))


@app.put("/v1/wallets/<wallet_id>/alerts")
def put_alerts(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import AlertsIn, AlertsOut

    body = _body(AlertsIn)
    thresholds = None if body.thresholds is None else [t.threshold() for t in body.thresholds]
    return _json(200, AlertsOut.of(_controls().set_alerts(_wallet(wallet_id), thresholds)))


@app.get("/v1/wallets/<wallet_id>/alerts")
def get_alerts(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import AlertsOut

    return _json(200, AlertsOut.of(_controls().alerts(_wallet(wallet_id))))


@app.get("/v1/wallets/<wallet_id>/members")
def member_budgets(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import MemberBudgetOut, MemberBudgetsOut

    found = _controls().member_budgets(_wallet(wallet_id))
    return _json(200, MemberBudgetsOut(items=[MemberBudgetOut.of(b) for b in found]))


@app.put("/v1/wallets/<wallet_id>/members/<member_id>/budget")
def put_member_budget(wallet_id: str, member_id: str) -> Response[Any]:
    from credit_meter.api.control_models import MemberBudgetIn, MemberBudgetOut

    body = _body(MemberBudgetIn)
    done = _controls().set_member_budget(_wallet(wallet_id), _member(member_id), body.budget)
    return _json(200, MemberBudgetOut.of(done))


@app.get("/v1/wallets/<wallet_id>/members/<member_id>/budget")
def get_member_budget(wallet_id: str, member_id: str) -> Response[Any]:
    from credit_meter.api.control_models import MemberBudgetOut

    found = _controls().member_budget(_wallet(wallet_id), _member(member_id))
    return _json(200, MemberBudgetOut.of(found))


@app.get("/v1/prices")
def prices() -> Response[Any]:
    return _json(200, PricesOut.of(catalog()))


# -- errors -----------------------------------------------------------------------------------


def _refused(error: DomainError) -> None:
    if isinstance(error, InsufficientCredits):
        metrics.add_metric(name="HoldsRefused", unit=MetricUnit.Count, value=1)
    elif isinstance(error, SpendingLimitReached):  # the owner's cap (or a member's budget)
        metrics.add_metric(name="LimitRefusals", unit=MetricUnit.Count, value=1)


problems.install(app, logger, _refused)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
