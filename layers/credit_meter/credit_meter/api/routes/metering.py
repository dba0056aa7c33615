"""The hot path's routes: reserve, commit, release, charge, quote (docs/api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from credit_meter.api.models import (
    ChargeIn,
    ChargeOut,
    CommitIn,
    CommitOut,
    QuoteIn,
    QuoteOut,
    ReleaseIn,
    ReleaseOut,
    ReservationOut,
    ReserveIn,
)
from credit_meter.api.routes.base import (
    count_charged,
    idempotent_request,
    json_response,
    metering,
    read_body,
    router,
    valid_wallet,
)

if TYPE_CHECKING:
    pass


@router.post("/v1/wallets/<wallet_id>/reservations")
def reserve(wallet_id: str) -> Response[Any]:
    body = read_body(ReserveIn)
    held = metering().reserve(
        valid_wallet(wallet_id),
        body.cost(),
        idempotent_request(body, "reserve"),
        body.feature,
        body.member_id,
        body.expires_in_seconds,
    )
    return json_response(201, ReservationOut.of(held))


@router.post("/v1/wallets/<wallet_id>/reservations/<reservation_id>/commit")
def commit(wallet_id: str, reservation_id: str) -> Response[Any]:
    body = read_body(CommitIn, optional=True)
    ended = metering().commit(
        valid_wallet(wallet_id), reservation_id, body.cost(), idempotent_request(body, "commit")
    )
    count_charged(ended.charged, ended.replayed)
    return json_response(200, CommitOut.of(ended))


@router.post("/v1/wallets/<wallet_id>/reservations/<reservation_id>/release")
def release(wallet_id: str, reservation_id: str) -> Response[Any]:
    body = read_body(ReleaseIn, optional=True)
    ended = metering().release(
        valid_wallet(wallet_id), reservation_id, idempotent_request(body, "release")
    )
    return json_response(200, ReleaseOut.of(ended))


@router.post("/v1/wallets/<wallet_id>/charges")
def charge(wallet_id: str) -> Response[Any]:
    body = read_body(ChargeIn)
    done = metering().charge(
        valid_wallet(wallet_id),
        body.cost(),
        idempotent_request(body, "charge"),
        body.feature,
        body.member_id,
    )
    count_charged(done.charged, done.replayed)
    return json_response(201, ChargeOut.of(done))


@router.post("/v1/wallets/<wallet_id>/quote")
def quote(wallet_id: str) -> Response[Any]:
    body = read_body(QuoteIn)
    return json_response(
        200, QuoteOut(credits=metering().quote(valid_wallet(wallet_id), body.lines()))
    )
