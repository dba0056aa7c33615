"""Top-up routes: offers, checkout, payments and invoices, auto top-up (docs/payments.md).

In a deployment without Stripe keys (``TOPUPS_ENABLED=false``) the routes that would call
Stripe or arm a purchase answer 501 ``topups-disabled``; the offers are empty (nothing can be
bought) and the reads of payments and auto top-up settings answer as usual."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from credit_meter.api.routes.base import (
    PAYMENT_ID,
    idempotent_request,
    json_response,
    read_body,
    router,
    valid_wallet,
)
from credit_meter.core.catalog import catalog
from credit_meter.core.errors import (
    PaymentNotFound,
)
from credit_meter.payments.topups import enabled, require_enabled

if TYPE_CHECKING:
    from credit_meter.payments.auto_topup import AutoTopups
    from credit_meter.payments.payments import Payments
    from credit_meter.payments.topups import Gateway


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


@router.get("/v1/topups/offers")
def offers() -> Response[Any]:
    from credit_meter.api.topup_models import OffersOut

    if not enabled():  # nothing can be bought here
        return json_response(200, OffersOut(packs=[], amounts=None))
    return json_response(200, OffersOut.of(catalog().topups))


@router.post("/v1/wallets/<wallet_id>/checkout")
def checkout(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import CheckoutIn, CheckoutOut

    require_enabled()
    body = read_body(CheckoutIn)
    request = idempotent_request(body, "checkout")
    done = _payments().checkout(
        valid_wallet(wallet_id),
        body.pack,
        body.amount,
        body.currency,
        body.success_url,
        body.cancel_url,
        body.save_payment_method,
        request.idempotency_key,
        _gateway,
    )
    return json_response(201, CheckoutOut.of(done))


@router.get("/v1/wallets/<wallet_id>/payments")
def payments(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import PaymentOut, PaymentsOut, PaymentsQuery

    query = PaymentsQuery.model_validate(router.current_event.query_string_parameters or {})
    lines, cursor = _payments().payments(valid_wallet(wallet_id), query.limit, query.cursor)
    items = [PaymentOut.of(p, wallet_id) for p in lines]
    return json_response(200, PaymentsOut(items=items, next_cursor=cursor))


@router.get("/v1/wallets/<wallet_id>/payments/<payment_id>/invoice")
def invoice(wallet_id: str, payment_id: str) -> Response[Any]:
    require_enabled()
    if not PAYMENT_ID.fullmatch(payment_id):
        raise PaymentNotFound(f"payment {payment_id!r} does not exist")
    link = _payments().invoice_link(valid_wallet(wallet_id), payment_id, _gateway)
    return Response(status_code=302, headers={"Location": link}, body="")


@router.put("/v1/wallets/<wallet_id>/auto-topup")
def put_auto_topup(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import AutoTopupIn, AutoTopupOut

    require_enabled()
    body = read_body(AutoTopupIn)
    done = _auto_topups().set_auto_topup(
        valid_wallet(wallet_id),
        body.enabled,
        body.threshold,
        body.pack,
        body.customer_id,
        body.payment_method_id,
    )
    return json_response(200, AutoTopupOut.of(done))


@router.get("/v1/wallets/<wallet_id>/auto-topup")
def get_auto_topup(wallet_id: str) -> Response[Any]:
    from credit_meter.api.topup_models import AutoTopupOut

    return json_response(200, AutoTopupOut.of(_auto_topups().auto_topup(valid_wallet(wallet_id))))
