"""A Hypothesis state machine drives spending limits and member budgets on the real data layer
(``tests.services.Service`` and ``Controls`` on DynamoDB Local) against a model in plain Python.

Each example is a new wallet (enterprise, 60 credits) shared by members ``ann``, ``bob`` and
``cat`` (and debits for no member). Random sequences of ``set_limits``,
``set_member_budget``, ``reserve``, ``commit`` (for less, exactly, or more than held),
``release``, ``charge`` and retries of keyed requests run one at a time; the model predicts
each answer exactly (the limit is tested first, then the member's budget, then the credits:
``metering.refusals.refusal``'s order) and after every step the wallet item must satisfy

* ``lrem == (lim or 10**15) − used − held``;
* for each budget entry, ``r == (c or 0) − u − Σ`` the open holds tagged with it;
* what the model says was used and held, by the wallet and by each member's budget.

A debit is accepted only if ``used + held + amount <= limit`` at that moment (and within the
member's budget); only a commit above its hold may take them past.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from credit_meter.controls.controls import Controls
from credit_meter.core.errors import (
    DomainError,
    InsufficientCredits,
    MemberBudgetNotFound,
    MemberBudgetReached,
    SpendingLimitReached,
)
from credit_meter.core.ids import ReservationId, member_tag
from credit_meter.core.wallets import Charge, Ended, Reservation
from credit_meter.metering.service import Cost, Request
from tests.services import Service

pytestmark = pytest.mark.integration

ZERO = Decimal(0)
NO_LIMIT = Decimal(10**15)
CREDITS = Decimal(60)
MEMBERS = ["ann", "bob", "cat"]

micro = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(20), places=6)
halves = st.integers(min_value=1, max_value=24).map(lambda n: Decimal(n) / 2)
amounts = st.one_of(halves, halves, micro)
limits = st.one_of(st.integers(min_value=0, max_value=80).map(Decimal), st.none())
caps = st.one_of(st.integers(min_value=0, max_value=30).map(Decimal), st.none(), micro)
debtors = st.sampled_from([None, *MEMBERS])


@dataclass
class ModelHold:
    rid: str
    credits: Decimal
    member: str | None
    budgeted: bool  # the member had a budget entry when the hold was made


@dataclass
class ModelBudget:
    cap: Decimal | None
    used: Decimal = ZERO


@dataclass
class Model:
    limit: Decimal | None = None
    used: Decimal = ZERO
    charged: Decimal = ZERO  # every debit ever (the balance is CREDITS less this)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    budgets: dict[str, ModelBudget] = field(default_factory=dict)

    @property
    def held(self) -> Decimal:
        return sum((h.credits for h in self.holds.values()), ZERO)

    @property
    def available(self) -> Decimal:
        return CREDITS - self.charged - self.held

    @property
    def limit_room(self) -> Decimal:
        return (NO_LIMIT if self.limit is None else self.limit) - self.used - self.held

    def budget_room(self, member: str) -> Decimal:
        budget = self.budgets[member]
        holding = sum(
            (h.credits for h in self.holds.values() if h.budgeted and h.member == member), ZERO
        )
        return (budget.cap or ZERO) - budget.used - holding

    def refusal(self, amount: Decimal, member: str | None) -> type[DomainError] | None:
        """What the service must answer a debit of ``amount``: None when it must pass."""
        over_limit = self.limit_room < amount
        over_budget = (
            member is not None
            and member in self.budgets
            and self.budgets[member].cap is not None
            and self.budget_room(member) < amount
        )
        if over_limit and over_budget:  # past both: the tighter one is named
            assert member is not None
            budget_left = max(ZERO, self.budget_room(member))
            return (
                MemberBudgetReached
                if budget_left < max(ZERO, self.limit_room)
                else (SpendingLimitReached)
            )
        if over_limit:
            return SpendingLimitReached
        if over_budget:
            return MemberBudgetReached
        if self.available < amount:
            return InsufficientCredits
        return None

    def debit(self, amount: Decimal, member: str | None, budgeted: bool) -> None:
        self.used += amount
        self.charged += amount
        if budgeted and member is not None:
            self.budgets[member].used += amount


class LimitMachine(RuleBasedStateMachine):
    billing: Service
    controls: Controls
    ledger: Any

    def __init__(self) -> None:
        super().__init__()
        self.wid = f"lprop-{uuid.uuid4().hex[:12]}"
        self.model = Model()
        # Accepted keyed requests a client could retry: (op, args, first result).
        self.done: list[tuple[str, tuple[Any, ...], Any]] = []

    @initialize(limit=limits, ann=caps, bob=caps)
    def create_wallet(
        self, limit: Decimal | None, ann: Decimal | None, bob: Decimal | None
    ) -> None:
        """A wallet, most often with a limit and budgets from the start."""
        created, view = self.billing.put_wallet(self.wid, "enterprise", CREDITS)
        assert created and view.balance == CREDITS
        self.set_limits(limit, False, False)
        self.set_member_budget("ann", ann)
        self.set_member_budget("bob", bob)

    def _request(self, op: str, body: Any, keyed: bool) -> Request:
        key = f"{op}-{uuid.uuid4().hex[:8]}" if keyed else None
        return Request(request_hash=f"{op}:{body!r}", idempotency_key=key)

    def _refused(self, error: DomainError, amount: Decimal, member: str | None) -> None:
        """The refusal names the limit or budget and what is left of it."""
        if isinstance(error, MemberBudgetReached):
            assert member is not None
            cap = self.model.budgets[member].cap
            assert (error.limit, error.remaining) == (
                cap,
                max(ZERO, self.model.budget_room(member)),
            )
        elif isinstance(error, SpendingLimitReached):
            assert (error.limit, error.remaining) == (
                self.model.limit,
                max(ZERO, self.model.limit_room),
            )
        elif isinstance(error, InsufficientCredits):
            assert (error.available, error.requested) == (self.model.available, amount)

    def _accepting(self, amount: Decimal, member: str | None) -> None:
        """A debit is being accepted: it fits under the limit and the budget right now."""
        model = self.model
        if model.limit is not None:
            assert model.used + model.held + amount <= model.limit
        budget = model.budgets.get(member) if member is not None else None
        if budget is not None and budget.cap is not None:
            assert member is not None
            assert model.budget_room(member) >= amount

    # -- settings ----------------------------------------------------------------------------

    @rule(limit=limits, alert=st.booleans(), in_eur=st.booleans())
    def set_limits(self, limit: Decimal | None, alert: bool, in_eur: bool) -> None:
        lat = None if limit is None or not alert else limit / 2
        if in_eur:  # 100 credits per EUR
            got = self.controls.set_limits(
                self.wid,
                None if lat is None else lat / 100,
                None if limit is None else limit / 100,
                "eur",
            )
        else:
            got = self.controls.set_limits(self.wid, lat, limit)
        self.model.limit = limit
        assert (got.allowed_limit, got.alert_threshold) == (limit, lat)
        assert (got.used, got.held) == (self.model.used, self.model.held)
        expected = None if limit is None else max(ZERO, self.model.limit_room)
        assert got.remaining == expected

    @rule(member=st.sampled_from(MEMBERS), cap=caps)
    def set_member_budget(self, member: str, cap: Decimal | None) -> None:
        if member not in self.model.budgets and cap is None:
            with pytest.raises(MemberBudgetNotFound):
                self.controls.set_member_budget(self.wid, member, cap)
            return
        got = self.controls.set_member_budget(self.wid, member, cap)
        self.model.budgets.setdefault(member, ModelBudget(cap)).cap = cap
        assert (got.member_id, got.budget, got.used) == (
            member,
            cap,
            self.model.budgets[member].used,
        )
        expected = None if cap is None else max(ZERO, self.model.budget_room(member))
        assert got.remaining == expected

    # -- debits ------------------------------------------------------------------------------

    @rule(amount=amounts, member=debtors, keyed=st.booleans())
    def reserve(self, amount: Decimal, member: str | None, keyed: bool) -> None:
        model = self.model
        request = self._request("reserve", (amount, member), keyed)
        args = (self.wid, Cost(amount), request, "chat", member)
        expected = model.refusal(amount, member)
        event(f"reserve: {'accepted' if expected is None else expected.__name__}")
        if expected is not None:
            with pytest.raises(expected) as refused:
                self.billing.reserve(*args)
            assert type(refused.value) is expected
            self._refused(refused.value, amount, member)
            return
        self._accepting(amount, member)
        held = self.billing.reserve(*args)
        budgeted = member is not None and member in model.budgets
        rid = ReservationId.parse(held.reservation_id)
        assert rid is not None and rid.credits == amount
        assert rid.member_tag == (member_tag(member) if budgeted and member else None)
        model.holds[held.reservation_id] = ModelHold(held.reservation_id, amount, member, budgeted)
        if keyed:
            self.done.append(("reserve", args, held))

    @rule(amount=amounts, member=debtors, keyed=st.booleans())
    def charge(self, amount: Decimal, member: str | None, keyed: bool) -> None:
        model = self.model
        request = self._request("charge", (amount, member), keyed)
        args = (self.wid, Cost(amount), request, "chat", member)
        expected = model.refusal(amount, member)
        event(f"charge: {'accepted' if expected is None else expected.__name__}")
        if expected is not None:
            with pytest.raises(expected) as refused:
                self.billing.charge(*args)
            assert type(refused.value) is expected
            self._refused(refused.value, amount, member)
            return
        self._accepting(amount, member)
        done = self.billing.charge(*args)
        assert done.charged == amount and not done.replayed
        model.debit(amount, member, member is not None and member in model.budgets)
        if keyed:
            self.done.append(("charge", args, done))

    @precondition(lambda self: self.model.holds)
    @rule(
        data=st.data(),
        how=st.sampled_from(["more", "exactly", "less", "default", "nothing"]),
        extra=halves,
    )
    def commit(self, data: st.DataObject, how: str, extra: Decimal) -> None:
        """Commits never fail, even past the limit or the budget (the work was done)."""
        rid = data.draw(st.sampled_from(list(self.model.holds)))
        hold = self.model.holds.pop(rid)
        cost = {
            "nothing": ZERO,
            "less": max(ZERO, hold.credits - extra),
            "exactly": hold.credits,
            "more": hold.credits + extra,
            "default": None,
        }[how]
        ended = self.billing.commit(self.wid, rid, Cost(cost), Request(f"commit-{rid}"))
        charged = hold.credits if cost is None else cost
        released = max(ZERO, hold.credits - charged)
        assert ended == Ended(rid, "committed", charged, released)
        self.model.debit(charged, hold.member, hold.budgeted)

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), extra=amounts)
    def commit_above_the_hold(self, data: st.DataObject, extra: Decimal) -> None:
        """The overshoot: used + held may end past the limit and the budget only this way."""
        rid = data.draw(st.sampled_from(list(self.model.holds)))
        hold = self.model.holds.pop(rid)
        cost = hold.credits + extra
        ended = self.billing.commit(self.wid, rid, Cost(cost), Request(f"commit-{rid}"))
        assert ended == Ended(rid, "committed", cost, ZERO)
        self.model.debit(cost, hold.member, hold.budgeted)

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(list(self.model.holds)))
        hold = self.model.holds.pop(rid)
        ended = self.billing.release(self.wid, rid, Request(f"release-{rid}"))
        assert ended == Ended(rid, "released", ZERO, hold.credits)

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """A keyed reserve or charge sent again gets its first answer, whatever the limit and
        the budgets say now, and changes nothing."""
        op, args, first = data.draw(st.sampled_from(self.done))
        before = self.ledger.wallet_item(self.wid)
        again = getattr(self.billing, op)(*args)
        assert again == first
        assert isinstance(again, (Reservation, Charge))
        after = self.ledger.wallet_item(self.wid)
        after.pop("posts", None)
        before.pop("posts", None)
        assert after == before

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def the_rooms_are_exact(self) -> None:
        item = self.ledger.wallet_item(self.wid)
        model = self.model
        assert (item["used"], item["held"]) == (model.used, model.held)
        assert item.get("lim") == model.limit
        assert item["lrem"] == (NO_LIMIT if model.limit is None else model.limit) - (
            item["used"] + item["held"]
        )
        holds = item.get("hd", {})
        assert set(holds) == {rid.split("_")[1] for rid in model.holds}
        budgets = item.get("mb", {})
        assert set(budgets) == {member_tag(m) for m in model.budgets}
        for member, budget in model.budgets.items():
            entry = budgets[member_tag(member)]
            holding = sum(
                (Decimal(h["c"]) for h in holds.values() if h.get("b") == member_tag(member)),
                ZERO,
            )
            assert entry["r"] == (entry.get("c") or ZERO) - entry["u"] - holding
            assert (entry.get("c"), entry["u"], entry["n"]) == (budget.cap, budget.used, member)
            assert entry["r"] == model.budget_room(member)
        assert item["bal"] == CREDITS - model.charged

    def teardown(self) -> None:
        if hasattr(self, "wid"):
            self.ledger.check(self.wid)


def test_limits_and_budgets_behave_like_the_model(metering: Service, ledger: Any) -> None:
    LimitMachine.billing = metering
    LimitMachine.controls = Controls()
    LimitMachine.ledger = ledger
    run_state_machine_as_test(
        LimitMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
