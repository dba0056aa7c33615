"""Credits that come and go outside metering: grants, voids, adjustments, transfers, promo
codes and referrals. Their use cases are imported on first use, so the metering routes' cold
start does not pay for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from credit_meter.api import access
from credit_meter.api.grant_models import (
    AdjustmentIn,
    AdjustmentOut,
    GrantIn,
    GrantLineOut,
    GrantOut,
    GrantsOut,
    GrantsQuery,
    PromoCodeIn,
    PromoCodeOut,
    RedeemIn,
    ReferralIn,
    ReferralOut,
    TransferIn,
    TransferOut,
    VoidIn,
    VoidOut,
)
from credit_meter.api.routes.base import (
    current_grant,
    idempotent_request,
    json_response,
    read_body,
    router,
    valid_wallet,
)
from credit_meter.core.errors import (
    GrantNotFound,
    WalletNotFound,
)
from credit_meter.core.ids import GRANT_ID

if TYPE_CHECKING:
    from credit_meter.billing.grants import Grants
    from credit_meter.billing.promotions import Promotions
    from credit_meter.billing.referrals import Referrals
    from credit_meter.billing.transfers import Transfers


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


@router.post("/v1/wallets/<wallet_id>/grants")
def grant(wallet_id: str) -> Response[Any]:
    body = read_body(GrantIn)
    granted = _grants().grant(
        valid_wallet(wallet_id),
        body.credits,
        body.source,
        idempotent_request(body, "grant"),
        body.expires_at,
        body.priority,
    )
    return json_response(201, GrantOut.of(granted))


@router.get("/v1/wallets/<wallet_id>/grants")
def grants(wallet_id: str) -> Response[Any]:
    query = GrantsQuery.model_validate(router.current_event.query_string_parameters or {})
    lines, cursor = _grants().grants(valid_wallet(wallet_id), query.limit, query.cursor)
    return json_response(
        200, GrantsOut(items=[GrantLineOut.of(g) for g in lines], next_cursor=cursor)
    )


@router.post("/v1/wallets/<wallet_id>/grants/<grant_id>/void")
def void_grant(wallet_id: str, grant_id: str) -> Response[Any]:
    read_body(VoidIn, optional=True)
    if not GRANT_ID.fullmatch(grant_id):
        raise GrantNotFound(f"grant {grant_id!r} does not exist")
    return json_response(200, VoidOut.of(_grants().void_grant(valid_wallet(wallet_id), grant_id)))


@router.post("/v1/wallets/<wallet_id>/adjustments")
def adjust(wallet_id: str) -> Response[Any]:
    body = read_body(AdjustmentIn)
    done = _grants().adjust(
        valid_wallet(wallet_id), body.credits, body.reason, idempotent_request(body, "adjust")
    )
    return json_response(201, AdjustmentOut.of(done))


@router.post("/v1/wallets/<wallet_id>/transfers")
def transfer(wallet_id: str) -> Response[Any]:
    body = read_body(TransferIn)
    try:
        access.Tenancy().wallet(current_grant().principal, body.to_wallet_id)
    except WalletNotFound:  # another organisation's wallet: worded as billing words a missing one
        raise WalletNotFound(
            f"wallet {body.to_wallet_id!r} (to_wallet_id) does not exist"
        ) from None
    done = _transfers().transfer(
        valid_wallet(wallet_id),
        body.to_wallet_id,
        body.credits,
        body.reason,
        idempotent_request(body, "transfer"),
    )
    return json_response(201, TransferOut.of(done))


@router.post("/v1/promo-codes")
def create_promo_code() -> Response[Any]:
    body = read_body(PromoCodeIn)
    created, promo = _promotions().create_promo(body.promo())
    return json_response(201 if created else 200, PromoCodeOut.of(promo))


@router.post("/v1/wallets/<wallet_id>/redeem")
def redeem(wallet_id: str) -> Response[Any]:
    body = read_body(RedeemIn)
    granted = _promotions().redeem(
        valid_wallet(wallet_id), body.code, idempotent_request(body, "redeem")
    )
    return json_response(201, GrantOut.of(granted))


@router.post("/v1/wallets/<wallet_id>/referral")
def referral(wallet_id: str) -> Response[Any]:
    body = read_body(ReferralIn)
    return json_response(
        201, ReferralOut.of(_referrals().refer(valid_wallet(wallet_id), body.referrer_wallet_id))
    )
