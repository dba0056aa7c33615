"""Holds, charges, retries and pages against the local API."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout  # not TimeoutError before 3.11
from decimal import Decimal
from typing import Any

import pytest
from conftest import Proxy

from credit_meter_client import (
    APIConnectionError,
    AsyncCreditMeter,
    CreditMeter,
    HoldStateError,
    ServerError,
)

USAGE = [{"meter": "input_tokens", "model": "gpt-4o", "quantity": 900}]


def test_wallet_amounts_are_decimals(cm: CreditMeter, wallet: str) -> None:
    got = cm.wallets.get(wallet)
    assert isinstance(got.available, Decimal)
    assert got.available == got.balance > 0
    assert got.held == 0 and got.period.start is not None


def test_hold_commits_on_success(cm: CreditMeter, wallet: str) -> None:
    before = cm.wallets.get(wallet).available
    with cm.hold(wallet, credits=Decimal("5"), feature="chat", member_id="ana") as hold:
        assert cm.wallets.get(wallet).held == Decimal("5")
        out = hold.commit(usage=USAGE)
    assert out.status == "committed" and out.charged > 0
    after = cm.wallets.get(wallet)
    assert after.held == 0
    assert after.available == before - out.charged
    with pytest.raises(HoldStateError):
        hold.commit(credits=1)


def test_hold_releases_on_exception(cm: CreditMeter, wallet: str) -> None:
    before = cm.wallets.get(wallet).available
    with (
        pytest.raises(RuntimeError, match="model failed"),
        cm.hold(wallet, credits=5, feature="chat") as hold,
    ):
        raise RuntimeError("model failed")
    assert hold.outcome is not None and hold.outcome.status == "released"
    after = cm.wallets.get(wallet)
    assert (after.held, after.available) == (0, before)


def test_hold_released_when_left_without_commit(cm: CreditMeter, wallet: str) -> None:
    with cm.hold(wallet, credits="2.5", feature="chat") as hold:
        pass
    assert hold.outcome is not None and hold.outcome.released == Decimal("2.5")
    assert cm.wallets.get(wallet).held == 0


def test_hold_released_when_the_model_call_times_out(cm: CreditMeter, wallet: str) -> None:
    def slow_model() -> str:
        time.sleep(2)
        return "late"

    pool = ThreadPoolExecutor(1)
    with pool, pytest.raises(FutureTimeout), cm.hold(wallet, credits=5, feature="chat") as hold:
        pool.submit(slow_model).result(timeout=0.1)
    assert hold.outcome is not None and hold.outcome.status == "released"
    assert cm.wallets.get(wallet).held == 0


def test_async_hold_released_on_cancellation(api: dict[str, Any], wallet: str) -> None:
    async def scenario() -> Any:
        async with AsyncCreditMeter(api["token"], base_url=api["base_url"]) as cm:
            hold = cm.hold(wallet, credits=5, feature="chat")

            async def metered_call() -> None:
                async with hold:
                    await asyncio.sleep(30)  # the model call that never ends

            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(metered_call(), timeout=1.0)
            assert hold.outcome is not None and hold.outcome.status == "released"
            async with cm.hold(wallet, credits=5, feature="chat") as ok:
                await ok.commit(credits="1.5")
            return await cm.wallets.get(wallet)

    got = asyncio.run(scenario())
    assert got.held == 0 and got.used == Decimal("1.5")


def test_charge_retried_after_a_dropped_answer_charges_once(
    api: dict[str, Any], proxy: Proxy, wallet: str
) -> None:
    with CreditMeter(api["token"], base_url=proxy.url) as cm:
        before = cm.wallets.get(wallet).available
        proxy.drop_next_posts(1)
        out = cm.charge(wallet, credits=Decimal("1"), feature="search")
        assert out.charged == Decimal("1")
        assert cm.wallets.get(wallet).available == before - 1
    assert proxy.posts()[f"/v1/wallets/{wallet}/charges"] == 2  # sent twice, applied once


def test_hold_retried_after_dropped_answers_holds_once(
    api: dict[str, Any], proxy: Proxy, wallet: str
) -> None:
    with CreditMeter(api["token"], base_url=proxy.url) as cm:
        proxy.drop_next_posts(1)
        with cm.hold(wallet, credits=5, feature="chat") as hold:
            assert cm.wallets.get(wallet).held == 5
            proxy.drop_next_posts(1)
            out = hold.commit(credits=2)
        assert out.charged == 2
        got = cm.wallets.get(wallet)
    assert got.held == 0 and got.used == 2
    posts = proxy.posts()
    assert posts[f"/v1/wallets/{wallet}/reservations"] == 2
    assert posts[f"/v1/wallets/{wallet}/reservations/{hold.id}/commit"] == 2


def test_async_charge_retried_once(api: dict[str, Any], proxy: Proxy, wallet: str) -> None:
    async def scenario() -> Any:
        async with AsyncCreditMeter(api["token"], base_url=proxy.url) as cm:
            proxy.drop_next_posts(1)
            await cm.charge(wallet, credits=3, feature="search")
            return await cm.wallets.get(wallet)

    assert asyncio.run(scenario()).used == 3


def test_5xx_and_429_are_retried(api: dict[str, Any], proxy: Proxy, wallet: str) -> None:
    with CreditMeter(api["token"], base_url=proxy.url) as cm:
        proxy.fail_next(2, 503)
        assert cm.wallets.get(wallet).wallet_id == wallet
        proxy.fail_next(1, 429)
        assert cm.charge(wallet, credits=1, feature="search").charged == 1
        proxy.fail_next(4, 500)  # one try and three retries
        with pytest.raises(ServerError) as caught:
            cm.wallets.get(wallet)
    assert caught.value.status == 500


def test_a_post_without_a_key_is_not_retried_after_a_500(api: dict[str, Any], proxy: Proxy) -> None:
    with CreditMeter(api["token"], base_url=proxy.url) as cm:
        proxy.fail_next(1, 500)
        with pytest.raises(ServerError):
            cm.promotions.create_code(f"CODE{uuid.uuid4().hex[:6].upper()}", credits=1)


def test_no_retries_left_raises_connection_error(
    api: dict[str, Any], proxy: Proxy, wallet: str
) -> None:
    with CreditMeter(api["token"], base_url=proxy.url, max_retries=0) as cm:
        proxy.drop_next_posts(1)
        with pytest.raises(APIConnectionError):
            cm.charge(wallet, credits=1, feature="search")


def test_unreachable_api_raises_after_retries() -> None:
    cm = CreditMeter("t", base_url="http://127.0.0.1:9", max_retries=1)
    with cm, pytest.raises(APIConnectionError):
        cm.wallets.get("w1")


def _ledger(cm: CreditMeter, wallet: str, count: int, **filters: Any) -> list[Any]:
    """The ledger once it holds ``count`` entries (it is projected from the table's stream)."""
    deadline = time.monotonic() + 60
    while True:
        entries = list(cm.transactions.list(wallet, **filters))
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.5)


def test_transactions_follow_cursors(cm: CreditMeter, wallet: str) -> None:
    for i in range(5):
        cm.charge(wallet, credits=Decimal("0.5"), feature="search", member_id=f"m{i}")
    charges = _ledger(cm, wallet, 5, limit=2, feature="search")
    assert len(charges) == 5
    assert {e.member_id for e in charges} == {f"m{i}" for i in range(5)}
    assert all(e.credits == Decimal("-0.5") for e in charges)
    first = cm.transactions.page(wallet, limit=2, feature="search")
    assert len(first.items) == 2 and first.next_cursor


def test_async_transactions_follow_cursors(
    api: dict[str, Any], cm: CreditMeter, wallet: str
) -> None:
    for _ in range(3):
        cm.charge(wallet, credits=1, feature="async-search")
    _ledger(cm, wallet, 3, feature="async-search")

    async def scenario() -> list[Any]:
        async with AsyncCreditMeter(api["token"], base_url=api["base_url"]) as acm:
            return [e async for e in acm.transactions.list(wallet, limit=1, feature="async-search")]

    assert len(asyncio.run(scenario())) == 3


def test_commit_from_an_openai_response(cm: CreditMeter, wallet: str) -> None:
    response = {
        "model": "gpt-4o-2024-08-06",
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 200},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    with cm.hold(wallet, credits=5, feature="chat") as hold:
        out = hold.commit_from_response(response)
    lines = [
        {"meter": "input_tokens", "model": "gpt-4o", "quantity": 1200},
        {"meter": "output_tokens", "model": "gpt-4o", "quantity": 300},
    ]
    assert out.charged == cm.charges.quote(wallet, usage=lines).credits


def test_idempotency_key_given_by_the_caller(cm: CreditMeter, wallet: str) -> None:
    key = f"order-{uuid.uuid4()}"
    first = cm.charge(wallet, credits=2, feature="search", idempotency_key=key)
    again = cm.charge(wallet, credits=2, feature="search", idempotency_key=key)
    assert first.charge_id == again.charge_id
    assert cm.wallets.get(wallet).used == 2
