"""Wallet routes: create or change a wallet's plan, bypass mode, read it; the price list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from credit_meter.api.models import BypassIn, PricesOut, WalletIn, WalletOut
from credit_meter.api.routes.base import (
    current_grant,
    json_response,
    metering,
    read_body,
    router,
    valid_wallet,
)
from credit_meter.core.catalog import catalog
from credit_meter.core.errors import (
    FieldProblem,
    InvalidRequest,
)

if TYPE_CHECKING:
    from credit_meter.billing.plans import Plans


def _plans() -> Plans:
    from credit_meter.billing.plans import Plans

    return Plans()


@router.put("/v1/wallets/<wallet_id>")
def put_wallet(wallet_id: str) -> Response[Any]:
    body = read_body(WalletIn)
    org = current_grant().principal.org  # a wallet is created in (or adopted by) the caller's org
    if body.org_id is not None and body.org_id != org:
        raise InvalidRequest([FieldProblem("org_id", "must be the organisation of your token")])
    created, view = _plans().put_wallet(
        valid_wallet(wallet_id), body.plan, body.allowance, body.anchor_day, org
    )
    return json_response(201 if created else 200, WalletOut.of(view))


@router.put("/v1/wallets/<wallet_id>/bypass")
def put_bypass(wallet_id: str) -> Response[Any]:
    body = read_body(BypassIn)
    return json_response(
        200, WalletOut.of(_plans().set_bypass(valid_wallet(wallet_id), body.enabled))
    )


@router.get("/v1/wallets/<wallet_id>")
def get_wallet(wallet_id: str) -> Response[Any]:
    return json_response(200, WalletOut.of(metering().get_wallet(valid_wallet(wallet_id))))


@router.get("/v1/prices")
def prices() -> Response[Any]:
    return json_response(200, PricesOut.of(catalog()))
