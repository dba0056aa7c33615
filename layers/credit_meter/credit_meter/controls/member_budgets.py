"""Members' budgets inside a shared wallet.

A budget lives on the wallet item (``mb.<tag>``) so the debit tests its room in its own
conditional write. Changing a cap moves the room by the difference, in one write conditioned
on the cap it replaces, so debits landing meanwhile are never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from credit_meter.core.errors import Conflict, Contention, MemberBudgetNotFound
from credit_meter.core.ids import member_tag
from credit_meter.core.money import ZERO
from credit_meter.metering import pricing_modes
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store, WriteRejected
from credit_meter.storage.wallet_record import Item

ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class MemberBudget:
    wallet_id: str
    member_id: str
    period_start: int
    period_end: int
    budget: Decimal | None
    used: Decimal  # charged to the budget this period
    held: Decimal  # in the member's open reservations counted against it
    remaining: Decimal | None


def budget_of(wallet: Item, tag: str, member_id: str) -> MemberBudget:
    entry = wallet_record.member_budgets(wallet).get(tag)
    if entry is None:
        raise MemberBudgetNotFound(f"member {member_id!r} has no budget in this wallet")
    cap = wallet_record.budget_cap(entry)
    return MemberBudget(
        wallet_id=wallet_record.wallet_id(wallet),
        member_id=wallet_record.budget_member(entry),
        period_start=wallet_record.period_start(wallet),
        period_end=wallet_record.period_end(wallet),
        budget=cap,
        used=wallet_record.budget_used(entry),
        held=wallet_record.held_for_budget(wallet, tag),
        remaining=None if cap is None else max(ZERO, wallet_record.budget_room(entry)),
    )


class MemberBudgets:
    """Read and set members' budgets (one read, one conditional write)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def member_budget(self, wallet_id: str, member_id: str) -> MemberBudget:
        wallet = wallet_record.read(self.store, wallet_id)
        return budget_of(wallet, member_tag(member_id), member_id)

    def member_budgets(self, wallet_id: str) -> list[MemberBudget]:
        wallet = wallet_record.read(self.store, wallet_id)
        found = [
            budget_of(wallet, tag, wallet_record.budget_member(entry))
            for tag, entry in wallet_record.member_budgets(wallet).items()
        ]
        return sorted(found, key=lambda b: b.member_id)

    def set_member_budget(
        self, wallet_id: str, member_id: str, budget: Decimal | None
    ) -> MemberBudget:
        """Give a member a budget for each period (None: no cap; usage is still counted).

        Usage counts against it from now on: debits made before the budget existed, and holds
        opened before it, are not charged to it.
        """
        tag = member_tag(member_id)
        for _ in range(ATTEMPTS):
            wallet = wallet_record.read(self.store, wallet_id)
            entry = wallet_record.member_budgets(wallet).get(tag)
            if entry is None:
                if budget is None:
                    raise MemberBudgetNotFound(f"member {member_id!r} has no budget in this wallet")
                first = not wallet_record.has_member_budgets(wallet)
                update = wallet_record.budget_add_update(wallet_id, tag, member_id, budget, first)
            else:
                update = wallet_record.budget_change_update(wallet_id, tag, entry, budget)
            try:
                self.store.update(update)
            except WriteRejected as rejected:
                if entry is None:
                    _refuse_if_full(rejected.old[0], tag)
                continue  # changed meanwhile: read again
            pricing_modes.budget_hints.learn(wallet_id, tag, True)
            return self.member_budget(wallet_id, member_id)
        raise Contention(f"the budget of member {member_id!r} kept changing")


def _refuse_if_full(now: Item | None, tag: str) -> None:
    """A new budget refused because the wallet has the most it may hold: 409."""
    if now is None:
        return
    budgets = wallet_record.member_budgets(now)
    if tag not in budgets and len(budgets) >= wallet_record.MAX_MEMBER_BUDGETS:
        raise Conflict(
            f"the wallet has budgets for {wallet_record.MAX_MEMBER_BUDGETS} members already",
            code="too-many-member-budgets",
        ) from None
