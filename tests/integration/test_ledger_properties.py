"""A Hypothesis state machine drives the real data layer (``Service`` on DynamoDB Local)
against a model in plain Python: balance, holds, buckets in burn-down order, overdraft, and
the ledger every accepted operation should leave behind (docs/domain.md).

Each example is a new wallet on one table; after every step the wallet must equal the model,
and at teardown the stream-projected ledger must be exactly the model's postings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from credit_meter.billing.buckets import MAX_BUCKETS
from credit_meter.core.catalog import UsageLine
from credit_meter.core.errors import Conflict, IdempotencyConflict, InsufficientCredits
from credit_meter.metering.service import Cost, Request
from tests.services import Service

pytestmark = pytest.mark.integration

ZERO = Decimal(0)
NEVER = float("inf")

# docs/domain.md (the burn-down order) and the default catalog: burn-down rank
# (promotional, allowance, paid) and default priority of each source, the plans' allowances
# and some meters' prices.
RANK = {"promo": 0, "welcome": 0, "referral": 0, "monthly": 1, "manual": 1, "purchase": 2}
DEFAULT_PRIORITY = {"purchase": 20}
PLANS = {"free": Decimal(50), "starter": Decimal(500), "pro": Decimal(2500)}
PRICES = {  # (meter, model) -> credits per unit
    ("image_standard", None): Decimal(4),
    ("image_hd", None): Decimal(8),
    ("task_completed", None): Decimal("0.25"),
    ("app_call", None): Decimal("0.05"),
    ("web_search", None): ZERO,
    ("input_tokens", "gpt-4o-mini"): Decimal("0.00002"),
    ("output_tokens", "claude-opus"): Decimal("0.0008"),
}

amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(60), places=6)
round_amounts = st.integers(min_value=1, max_value=40).map(lambda n: Decimal(n) / 2)
credits_in = st.one_of(round_amounts, amounts)
usage_lines = st.lists(
    st.tuples(st.sampled_from(sorted(PRICES, key=str)), st.integers(min_value=1, max_value=3000)),
    min_size=1,
    max_size=3,
)
features = st.sampled_from(["chat", "image", "agent"])
members = st.sampled_from([None, "ann", "bob"])


@dataclass
class ModelBucket:
    id: str
    source: str
    priority: int
    expires_at: int | None
    created_at: int
    remaining: Decimal

    def key(self) -> tuple[int, float, int, int, str]:
        expires = NEVER if self.expires_at is None else float(self.expires_at)
        return (self.priority, expires, RANK[self.source], self.created_at, self.id)


@dataclass
class ModelHold:
    rid: str
    credits: Decimal
    feature: str
    member: str | None


@dataclass
class Model:
    buckets: list[ModelBucket] = field(default_factory=list)
    debt: Decimal = ZERO  # overdraft left by commits beyond their holds
    used: Decimal = ZERO  # Σ debits (commits and charges)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    postings: list[tuple[str, Decimal, str]] = field(default_factory=list)  # id, credits, st
    plan: str = ""
    allowance: Decimal = ZERO

    @property
    def balance(self) -> Decimal:
        return sum((b.remaining for b in self.buckets), ZERO) - self.debt

    @property
    def held(self) -> Decimal:
        return sum((h.credits for h in self.holds.values()), ZERO)

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    def debit(self, amount: Decimal) -> None:
        self.used += amount
        for bucket in self.buckets:  # in burn-down order
            take = min(bucket.remaining, amount)
            bucket.remaining -= take
            amount -= take
        self.debt += amount

    def credit(self, bucket: ModelBucket) -> None:
        repaid = min(self.debt, bucket.remaining)
        self.debt -= repaid
        bucket.remaining -= repaid
        # A grant rebuilds the list: spent buckets go, the rest is sorted again.
        self.buckets = sorted(
            [b for b in [*self.buckets, bucket] if b.remaining > 0], key=ModelBucket.key
        )


def _price(lines: list[tuple[tuple[str, str | None], int]]) -> Decimal:
    total = sum((PRICES[m] * q for m, q in lines), ZERO)
    return total.quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")


class LedgerMachine(RuleBasedStateMachine):
    service: Service
    ledger: Any

    def __init__(self) -> None:
        super().__init__()
        self.wid = f"prop-{uuid.uuid4().hex[:12]}"
        self.model = Model()
        # Accepted requests a client could retry: (op, args, request, first result).
        self.done: list[tuple[str, tuple[Any, ...], Request, Any]] = []
        self.ended: list[tuple[ModelHold, str, Request, Any]] = []  # hold, how, request, result

    def _request(self, op: str, body: Any, keyed: bool) -> Request:
        key = f"{op}-{uuid.uuid4().hex[:8]}" if keyed else None
        return Request(request_hash=f"{op}:{body!r}", idempotency_key=key)

    # -- wallet ----------------------------------------------------------------------------

    @initialize(
        plan=st.sampled_from(["free", "enterprise", "enterprise", "starter"]),
        allowance=st.sampled_from([ZERO, Decimal(5), Decimal("37.5")]),
    )
    def create_wallet(self, plan: str, allowance: Decimal) -> None:
        custom = allowance if plan == "enterprise" else None
        created, view = self.service.put_wallet(self.wid, plan, custom)
        assert created
        amount = PLANS.get(plan, allowance)
        if amount > 0:
            item = self.ledger.wallet_item(self.wid)
            (bucket,) = item["bk"]
            self.model.buckets = [
                ModelBucket(
                    bucket["id"], "monthly", 10, int(bucket["exp"]), int(bucket["at"]), amount
                )
            ]
            self.model.postings.append((bucket["id"], amount, "posted"))
        self.model.plan, self.model.allowance = plan, amount
        assert view.balance == amount

    @rule(plan=st.sampled_from(["free", "starter", "pro"]))
    def change_plan(self, plan: str) -> None:
        """An upgrade grants the difference in allowance at once (a ``monthly`` bucket ending
        with the period, repaying an overdraft first); a downgrade waits for the next period."""
        known = {b.id for b in self.model.buckets}
        created, view = self.service.put_wallet(self.wid, plan)
        assert not created
        if PLANS[plan] > self.model.allowance:
            added = [b for b in self.ledger.wallet_item(self.wid)["bk"] if b["id"] not in known]
            difference = PLANS[plan] - self.model.allowance
            bucket_id = added[0]["id"] if added else None  # none: all of it repaid a debt
            stored = added[0] if added else {"exp": view.period_end, "at": 0}
            self.model.credit(
                ModelBucket(
                    bucket_id or "repaid",
                    "monthly",
                    10,
                    int(stored["exp"]),
                    int(stored["at"]),
                    difference,
                )
            )
            posting = next(e for e in self._stream_grant_ids() if e not in self._posted_ids())
            self.model.postings.append((posting, difference, "posted"))
            self.model.plan, self.model.allowance = plan, PLANS[plan]
            assert view.pending_plan is None
        else:
            expected_pending = None if plan == self.model.plan else plan
            assert view.pending_plan == expected_pending
        assert (view.plan, view.balance, view.held) == (
            self.model.plan,
            self.model.balance,
            self.model.held,
        )

    def _posted_ids(self) -> set[str]:
        return {p[0] for p in self.model.postings}

    def _stream_grant_ids(self) -> list[str]:
        """Grant ids the wallet's last write posted (its ``posts``)."""
        return [p["id"] for p in self.ledger.wallet_item(self.wid).get("posts", [])]

    # -- reservations ----------------------------------------------------------------------

    @rule(
        data=st.data(),
        by_usage=st.booleans(),
        feature=features,
        member=members,
        keyed=st.booleans(),
    )
    def reserve(
        self, data: st.DataObject, by_usage: bool, feature: str, member: str | None, keyed: bool
    ) -> None:
        if by_usage:
            lines = data.draw(usage_lines, label="usage")
            usage = tuple(UsageLine(m, Decimal(q), model) for (m, model), q in lines)
            cost, credits = Cost(usage=usage), _price(lines)
        else:
            credits = data.draw(credits_in, label="credits")
            cost = Cost(credits=credits)
        request = self._request("reserve", (cost, feature, member), keyed)
        args = (self.wid, cost, request, feature, member)
        if credits > self.model.available:
            with pytest.raises(InsufficientCredits):
                self.service.reserve(*args)
            return
        held = self.service.reserve(*args)
        assert (held.status, held.credits) == ("held", credits)
        self.model.holds[held.reservation_id] = ModelHold(
            held.reservation_id, credits, feature, member
        )
        if keyed:
            self.done.append(("reserve", args, request, held))

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), how=st.sampled_from(["less", "exact", "more", "default", "zero"]))
    def commit(self, data: st.DataObject, how: str) -> None:
        hold = data.draw(st.sampled_from(sorted(self.model.holds.values(), key=lambda h: h.rid)))
        delta = data.draw(credits_in, label="delta")
        actual = {
            "less": max(ZERO, hold.credits - delta),
            "exact": hold.credits,
            "more": hold.credits + delta,
            "default": None,
            "zero": ZERO,
        }[how]
        request = self._request("commit", actual, False)
        ended = self.service.commit(self.wid, hold.rid, Cost(credits=actual), request)
        charged = hold.credits if actual is None else actual
        assert (ended.status, ended.charged) == ("committed", charged)
        assert ended.released == max(ZERO, hold.credits - charged)
        del self.model.holds[hold.rid]
        self.model.debit(charged)
        self.model.postings.append((hold.rid, -charged, "committed"))
        self.ended.append((hold, "commit", request, ended))

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from(sorted(self.model.holds.values(), key=lambda h: h.rid)))
        request = self._request("release", None, False)
        ended = self.service.release(self.wid, hold.rid, request)
        assert (ended.status, ended.charged, ended.released) == ("released", ZERO, hold.credits)
        del self.model.holds[hold.rid]
        self.model.postings.append((hold.rid, ZERO, "released"))
        self.ended.append((hold, "release", request, ended))

    @precondition(lambda self: self.model.available > 0)
    @rule(extra=credits_in, member=members)
    def overdraw(self, extra: Decimal, member: str | None) -> None:
        """Hold all that is available, then commit more: the balance may go negative."""
        credits = self.model.available
        request = self._request("reserve", credits, False)
        held = self.service.reserve(self.wid, Cost(credits=credits), request, "agent", member)
        hold = ModelHold(held.reservation_id, credits, "agent", member)
        request = self._request("commit", extra, False)
        ended = self.service.commit(self.wid, hold.rid, Cost(credits=credits + extra), request)
        assert (ended.charged, ended.released) == (credits + extra, ZERO)
        self.model.debit(credits + extra)
        self.model.postings.append((hold.rid, -(credits + extra), "committed"))
        self.ended.append((hold, "commit", request, ended))
        assert self.model.available < 0
        with pytest.raises(InsufficientCredits):
            self.service.charge(
                self.wid,
                Cost(credits=Decimal("0.000001")),
                self._request("charge", 0, False),
                "chat",
            )

    @precondition(lambda self: self.ended)
    @rule(data=st.data(), same_body=st.booleans(), same_way=st.booleans())
    def end_again(self, data: st.DataObject, same_body: bool, same_way: bool) -> None:
        """A hold ends exactly once: a retry replays, anything else is a 409."""
        hold, how, request, first = data.draw(st.sampled_from(self.ended))
        rid = hold.rid
        way = how if same_way else {"commit": "release", "release": "commit"}[how]
        if not same_body:
            request = Request(request_hash=request.request_hash + "-other")
        call = (
            (lambda: self.service.commit(self.wid, rid, Cost(), request))
            if way == "commit"
            else (lambda: self.service.release(self.wid, rid, request))
        )
        past = "committed" if how == "commit" else "released"
        if way != how:
            with pytest.raises(Conflict) as refused:
                call()
            assert refused.value.code == f"reservation-{past}"
        elif not same_body:
            with pytest.raises(Conflict) as refused:  # a 409 either way
                call()
            assert refused.value.code in {"idempotency-key-reused", f"reservation-{past}"}
        else:
            assert call() == first

    # -- charges and grants ----------------------------------------------------------------

    @rule(credits=credits_in, feature=features, member=members, keyed=st.booleans())
    def charge(self, credits: Decimal, feature: str, member: str | None, keyed: bool) -> None:
        request = self._request("charge", (credits, feature, member), keyed)
        args = (self.wid, Cost(credits=credits), request, feature, member)
        if credits > self.model.available:
            with pytest.raises(InsufficientCredits):
                self.service.charge(*args)
            return
        done = self.service.charge(*args)
        assert done.charged == credits
        self.model.debit(credits)
        self.model.postings.append((done.charge_id, -credits, "posted"))
        if keyed:
            self.done.append(("charge", args, request, done))

    @rule(
        credits=credits_in,
        # every source a client may grant (the allowance comes from the plan only)
        source=st.sampled_from(sorted(set(RANK) - {"monthly"})),
        priority=st.sampled_from([None, None, 0, 10, 30]),
        expires_in_days=st.sampled_from([None, 1, 7, 40]),
        keyed=st.booleans(),
    )
    def grant(
        self,
        credits: Decimal,
        source: str,
        priority: int | None,
        expires_in_days: int | None,
        keyed: bool,
    ) -> None:
        expires = (
            None if expires_in_days is None else datetime.now(UTC) + timedelta(days=expires_in_days)
        )
        request = self._request("grant", (credits, source, priority, expires_in_days), keyed)
        args = (self.wid, credits, source, request, expires, priority)
        if len(self.model.buckets) >= MAX_BUCKETS:  # the wallet's grants are at their maximum
            with pytest.raises(Conflict) as refused:
                self.service.grant(*args)
            assert refused.value.code == "too-many-grants"
            return
        granted = self.service.grant(*args)
        expected_priority = DEFAULT_PRIORITY.get(source, 10) if priority is None else priority
        assert (granted.credits, granted.source, granted.priority) == (
            credits,
            source,
            expected_priority,
        )
        stored = {b["id"]: b for b in self.ledger.wallet_item(self.wid)["bk"]}
        at = int(stored[granted.grant_id]["at"]) if granted.grant_id in stored else 0
        self.model.credit(
            ModelBucket(
                granted.grant_id, source, expected_priority, granted.expires_at, at, credits
            )
        )
        self.model.postings.append((granted.grant_id, credits, "posted"))
        if keyed:
            self.done.append(("grant", args, request, granted))

    # -- client retries --------------------------------------------------------------------

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same request with its Idempotency-Key: the first answer, no new effect."""
        op, args, _, first = data.draw(st.sampled_from(self.done))
        assert getattr(self.service, op)(*args) == first

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def reuse_key_with_another_body(self, data: st.DataObject) -> None:
        op, args, request, _ = data.draw(st.sampled_from(self.done))
        other = Request(request.request_hash + "-other", request.idempotency_key)
        changed = tuple(other if a is request else a for a in args)
        with pytest.raises(IdempotencyConflict):
            getattr(self.service, op)(*changed)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def wallet_matches_the_model(self) -> None:
        item = self.ledger.wallet_item(self.wid)
        view = self.service.get_wallet(self.wid)
        model = self.model
        assert (view.balance, view.held, view.available) == (
            model.balance,
            model.held,
            model.available,
        )
        assert view.available == view.balance - view.held
        assert view.used == model.used
        holds = item.get("hd", {})
        assert set(holds) == {h.rid.split("_")[1] for h in model.holds.values()}
        assert item["held"] == sum((Decimal(h["c"]) for h in holds.values()), ZERO)
        left = [(b.bucket.id, b.remaining) for b in view.buckets if b.remaining > 0]
        assert left == [(b.id, b.remaining) for b in model.buckets if b.remaining > 0]
        if view.balance >= 0:
            assert sum(r for _, r in left) == view.balance

    def teardown(self) -> None:
        self.ledger.drain()
        entries = self.ledger.entries(self.wid)
        self.ledger.check_item(self.ledger.wallet_item(self.wid), entries)
        assert [(e["transaction_id"], e["credits"], e["status"]) for e in entries] == (
            self.model.postings
        )
        ended = {hold.rid: hold for hold, _, _, _ in self.ended}
        for entry in entries:
            hold = ended.get(entry["transaction_id"])
            if hold is not None:  # a commit or release shows what the hold was for
                assert entry["type"] == "reservation"
                assert (entry.get("feature"), entry.get("member_id")) == (hold.feature, hold.member)


def test_the_data_layer_behaves_like_the_model(metering: Service, ledger: Any) -> None:
    LedgerMachine.service = metering
    LedgerMachine.ledger = ledger
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
