"""Spending controls: limits, alert thresholds, member budgets (docs/events.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from credit_meter.api.routes.base import (
    json_response,
    read_body,
    router,
    valid_member,
    valid_wallet,
)
from credit_meter.core.catalog import catalog

if TYPE_CHECKING:
    from credit_meter.controls.controls import Controls


def _controls() -> Controls:
    from credit_meter.controls.controls import Controls

    return Controls()


@router.put("/v1/wallets/<wallet_id>/limits")
def put_limits(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import LimitsIn, LimitsOut

    body = read_body(LimitsIn)
    limits = _controls().set_limits(
        valid_wallet(wallet_id), body.alert_threshold, body.allowed_limit, body.currency
    )
    return json_response(200, LimitsOut.of(limits, catalog().topups.fiat))


@router.get("/v1/wallets/<wallet_id>/limits")
def get_limits(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import LimitsOut

    return json_response(
        200, LimitsOut.of(_controls().limits(valid_wallet(wallet_id)), catalog().topups.fiat)
    )


@router.put("/v1/wallets/<wallet_id>/alerts")
def put_alerts(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import AlertsIn, AlertsOut

    body = read_body(AlertsIn)
    thresholds = None if body.thresholds is None else [t.threshold() for t in body.thresholds]
    return json_response(
        200, AlertsOut.of(_controls().set_alerts(valid_wallet(wallet_id), thresholds))
    )


@router.get("/v1/wallets/<wallet_id>/alerts")
def get_alerts(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import AlertsOut

    return json_response(200, AlertsOut.of(_controls().alerts(valid_wallet(wallet_id))))


@router.get("/v1/wallets/<wallet_id>/members")
def member_budgets(wallet_id: str) -> Response[Any]:
    from credit_meter.api.control_models import MemberBudgetOut, MemberBudgetsOut

    found = _controls().member_budgets(valid_wallet(wallet_id))
    return json_response(200, MemberBudgetsOut(items=[MemberBudgetOut.of(b) for b in found]))


@router.put("/v1/wallets/<wallet_id>/members/<member_id>/budget")
def put_member_budget(wallet_id: str, member_id: str) -> Response[Any]:
    from credit_meter.api.control_models import MemberBudgetIn, MemberBudgetOut

    body = read_body(MemberBudgetIn)
    done = _controls().set_member_budget(
        valid_wallet(wallet_id), valid_member(member_id), body.budget
    )
    return json_response(200, MemberBudgetOut.of(done))


@router.get("/v1/wallets/<wallet_id>/members/<member_id>/budget")
def get_member_budget(wallet_id: str, member_id: str) -> Response[Any]:
    from credit_meter.api.control_models import MemberBudgetOut

    found = _controls().member_budget(valid_wallet(wallet_id), valid_member(member_id))
    return json_response(200, MemberBudgetOut.of(found))
