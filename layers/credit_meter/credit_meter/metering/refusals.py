"""Why a debit was refused, told from the wallet its refused write returned (no extra read),
and the once-per-period mark a limit's refusal leaves for the ``limit.reached`` alert."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from credit_meter.core.errors import (
    DomainError,
    InsufficientCredits,
    MemberBudgetReached,
    SpendingLimitReached,
)
from credit_meter.core.money import ZERO, fmt
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store, WriteRejected
from credit_meter.storage.wallet_record import Item


def insufficient(requested: Decimal, wallet: Item) -> InsufficientCredits:
    available = wallet_record.available(wallet)
    return InsufficientCredits(
        f"{fmt(requested)} credits requested, {fmt(available)} available",
        available=available,
        requested=requested,
    )


def refusal(credits: Decimal, wallet: Item, tag: str | None) -> DomainError:
    """Why a debit of ``credits`` was refused, from the wallet as the refusal returned it.
    Past both the spending limit and the member's budget, the tighter one is named (a retry
    for what it says is left then succeeds)."""
    passed: list[SpendingLimitReached] = []
    room = wallet_record.limit_room(wallet)
    if room is not None and room < credits:
        limit = wallet_record.limit(wallet)
        limit = wallet_record.NO_LIMIT_ROOM if limit is None else limit
        left = max(ZERO, room)
        passed.append(
            SpendingLimitReached(
                f"{fmt(credits)} credits requested, {fmt(left)} left of this period's "
                f"spending limit of {fmt(limit)} (open reservations count as spent)",
                limit=limit,
                remaining=left,
            )
        )
    budget = wallet_record.member_budgets(wallet).get(tag) if tag is not None else None
    cap = None if budget is None else wallet_record.budget_cap(budget)
    if budget is not None and cap is not None and wallet_record.budget_room(budget) < credits:
        left = max(ZERO, wallet_record.budget_room(budget))
        passed.append(
            MemberBudgetReached(
                f"{fmt(credits)} credits requested, {fmt(left)} left of the budget of "
                f"{fmt(cap)} for member {wallet_record.budget_member(budget)!r} this period",
                limit=cap,
                remaining=left,
            )
        )
    if passed:
        return min(passed, key=lambda refused: refused.remaining)
    return insufficient(credits, wallet)


def mark_refusal(
    store: Store,
    wallet_id: str,
    wallet: Item | None,
    tag: str | None,
    refused: SpendingLimitReached,
) -> None:
    """Note, once per period, that the spending limit (or the member's budget) refused a
    debit: the refusal itself writes nothing, and the alerts function, which reads the
    stream, fires ``limit.reached`` on this write. Only refusals that come before the
    mark is visible pay for it (one conditional write)."""
    if wallet is None:
        return
    period = Decimal(wallet_record.period_start(wallet))
    if isinstance(refused, MemberBudgetReached):
        if tag is None:
            return
        hit = wallet_record.budget_hit(wallet_record.member_budgets(wallet)[tag])
        if hit == period:
            return
        update = wallet_record.refusal_mark_update(wallet_id, period, tag)
    else:
        if wallet_record.limit_hit(wallet) == period:
            return
        update = wallet_record.refusal_mark_update(wallet_id, period, None)
    with contextlib.suppress(WriteRejected):  # marked already, or a new period began
        store.update(update)
