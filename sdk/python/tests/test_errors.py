"""Each problem type of the API arrives as its own exception, with the problem's fields."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from credit_meter_client import (
    APIError,
    CreditMeter,
    Forbidden,
    IdempotencyConflict,
    InsufficientCredits,
    MemberBudgetReached,
    NotFound,
    ReservationEnded,
    SpendingLimitReached,
    Unauthorized,
    ValidationFailed,
)


def test_insufficient_credits(cm: CreditMeter, wallet: str) -> None:
    with pytest.raises(InsufficientCredits) as caught:
        cm.charge(wallet, credits=100000, feature="chat")
    err = caught.value
    assert err.status == 402 and err.type == "/problems/insufficient-credits"
    assert err.requested == Decimal("100000") and isinstance(err.available, Decimal)
    assert err.problem["title"] and err.detail


def test_insufficient_credits_refuses_a_hold(cm: CreditMeter, wallet: str) -> None:
    with pytest.raises(InsufficientCredits), cm.hold(wallet, credits=100000, feature="chat"):
        pytest.fail("the block must not run without a hold")


def test_spending_limit_reached(cm: CreditMeter, admin: CreditMeter, wallet: str) -> None:
    admin.limits.set(wallet, allowed_limit=1)
    with pytest.raises(SpendingLimitReached) as caught:
        cm.charge(wallet, credits=2, feature="chat")
    assert caught.value.status == 403
    assert (caught.value.limit, caught.value.remaining) == (Decimal("1"), Decimal("1"))


def test_member_budget_reached(cm: CreditMeter, admin: CreditMeter, wallet: str) -> None:
    admin.budgets.set(wallet, "ana", budget=Decimal("1"))
    with pytest.raises(MemberBudgetReached) as caught:
        cm.charge(wallet, credits=2, feature="chat", member_id="ana")
    assert caught.value.code == "member-budget-reached" and caught.value.limit == 1


def test_not_found(cm: CreditMeter) -> None:
    with pytest.raises(NotFound) as caught:
        cm.wallets.get(f"missing-{uuid.uuid4().hex[:8]}")
    assert caught.value.code == "wallet-not-found"


def test_idempotency_key_reused_with_another_body(cm: CreditMeter, wallet: str) -> None:
    cm.charge(wallet, credits=1, feature="chat", idempotency_key="same-key")
    with pytest.raises(IdempotencyConflict) as caught:
        cm.charge(wallet, credits=2, feature="chat", idempotency_key="same-key")
    assert caught.value.status == 409


def test_reservation_ended(cm: CreditMeter, wallet: str) -> None:
    with cm.hold(wallet, credits=1, feature="chat") as hold:
        hold.release()
    with pytest.raises(ReservationEnded) as caught:
        cm.reservations.commit(wallet, hold.id, credits=1)
    assert caught.value.code == "reservation-released"


def test_validation_errors(cm: CreditMeter, wallet: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        cm.charge(wallet, credits="-1", feature="chat")
    assert caught.value.status == 422
    assert caught.value.errors and {"field", "message"} <= set(caught.value.errors[0])


def test_unauthorized(api: dict[str, Any]) -> None:
    cm = CreditMeter("not-a-valid-token", base_url=api["base_url"])
    with cm, pytest.raises(Unauthorized) as caught:
        cm.prices.get()
    assert caught.value.status == 401


def test_forbidden(api: dict[str, Any], wallet: str) -> None:
    viewer = CreditMeter(api["viewer_token"], base_url=api["base_url"])
    with viewer, pytest.raises(Forbidden) as caught:
        viewer.charge(wallet, credits=1, feature="chat")
    assert caught.value.code == "forbidden" and not isinstance(caught.value, SpendingLimitReached)


def test_every_error_is_an_api_error(cm: CreditMeter) -> None:
    with pytest.raises(APIError):
        cm.wallets.get("bad id with spaces")
