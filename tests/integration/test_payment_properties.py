"""Hypothesis: whatever Stripe sends, in whatever order and however often, a wallet ends up
holding exactly what its payments' facts say (docs/domain.md invariant 5), on DynamoDB Local.

Each example is a fresh wallet and a handful of payments: paid (by checkout, by an
asynchronous checkout or as an auto top-up) or not (failed, or still pending), partially or
wholly refunded (Stripe's ``amount_refunded`` only grows), disputed (chargebacks and
inquiries, open or closed). Every event they produce is delivered at least once, in a random
order with random duplicates — sequentially, or from a few threads at once. Then:

* the wallet's balance moved by exactly Σ over paid payments of
  ``credits − round_half_even(credits × min(amount, refunded + withdrawn) / amount, 6 dp)``,
  where ``withdrawn`` sums the disputes whose funds are out (open chargebacks, lost ones);
* each payment item's ``credited`` is its own share of that sum;
* the stream-projected ledger passes ``Ledger.check``.
"""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit_meter.core.errors import Contention
from credit_meter.payments.payments import Payments
from credit_meter.payments.stripe_webhooks import observe
from credit_meter.storage import items
from devtools import stripe_events as se
from tests.services import Service

pytestmark = pytest.mark.integration

Json = dict[str, Any]
ZERO = Decimal(0)
T0 = 1_790_000_000  # events are created within a few minutes of this

# Dispute lifecycles (Stripe's statuses, in the order they occur) and, for each final
# status, whether the disputed funds stay out of the merchant's balance.
CHARGEBACK = ("needs_response", "under_review")
INQUIRY = ("warning_needs_response", "warning_under_review")
FINAL_WITHDRAWN = {"won": False, "lost": True, "warning_closed": False}


def round_half_even_6(x: Fraction) -> Decimal:
    """``x`` rounded half-even to 6 decimals, exactly (no intermediate precision)."""
    scaled = x * 1_000_000
    n = math.floor(scaled)
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    return Decimal(n).scaleb(-6)


@dataclass
class Dispute:
    id: str
    amount: int
    statuses: list[str]  # as they happened; the last is where the dispute stands

    @property
    def withdrawn(self) -> bool:
        last = self.statuses[-1]
        return FINAL_WITHDRAWN.get(last, last in CHARGEBACK)


@dataclass
class Payment:
    wallet_id: str
    credits: Decimal
    amount: int  # cents
    how: str  # checkout, async, auto_topup, failed, pending
    refunds: list[int]  # cumulative amount_refunded of each charge.refunded, growing
    disputes: list[Dispute]
    charge_metadata: bool
    pid: str = field(default_factory=lambda: se.new_id("pi"))
    charge_id: str = field(default_factory=lambda: se.new_id("ch"))
    session_id: str = field(default_factory=lambda: se.new_id("cs_test", 58))

    @property
    def paid(self) -> bool:
        return self.how in ("checkout", "async", "auto_topup")

    def expected(self) -> Decimal:
        if not self.paid:
            return ZERO
        back = max(self.refunds, default=0) + sum(d.amount for d in self.disputes if d.withdrawn)
        if back <= 0:
            return self.credits
        share = Fraction(self.credits) * min(self.amount, back) / self.amount
        return self.credits - round_half_even_6(share)

    def meta(self) -> dict[str, str]:
        kind = "auto_topup" if self.how == "auto_topup" else "checkout"
        crossing = 1 if kind == "auto_topup" else None
        credits = format(self.credits, "f")
        return se.wallet_metadata(self.wallet_id, credits, "fiat", kind=kind, crossing=crossing)

    def events(self, at: list[int]) -> list[Json]:
        """Every event Stripe sends about this payment (``at`` gives created times)."""
        clock = iter(at)
        out: list[Json] = []

        def add(kind: str, obj: Json) -> None:
            out.append(se.event(kind, obj, created=next(clock, T0)))

        def session(payment_status: str) -> Json:
            return se.checkout_session(
                session_id=self.session_id,
                payment_intent=self.pid,
                wallet_id=self.wallet_id,
                credits=format(self.credits, "f"),
                offer="fiat",
                amount_total=self.amount,
                currency="eur",
                payment_status=payment_status,
            )

        def charge(refunded: int = 0, status: str = "succeeded") -> Json:
            return se.charge(
                id=self.charge_id,
                payment_intent=self.pid,
                amount=self.amount,
                amount_refunded=refunded,
                currency="eur",
                metadata=self.meta() if self.charge_metadata else None,
                status=status,
            )

        def intent(status: str) -> Json:
            error = se.card_error() if status == "requires_payment_method" else None
            return se.payment_intent(
                id=self.pid,
                amount=self.amount,
                currency="eur",
                status=status,
                metadata=self.meta(),
                latest_charge=self.charge_id,
                last_payment_error=error,
            )

        if self.how == "checkout":
            add("checkout.session.completed", session("paid"))
        elif self.how in ("async", "failed", "pending"):
            add("checkout.session.completed", session("unpaid"))
        if self.how == "async":
            add("checkout.session.async_payment_succeeded", session("paid"))
        if self.how == "failed":
            add("checkout.session.async_payment_failed", session("unpaid"))
            add("payment_intent.payment_failed", intent("requires_payment_method"))
            add("charge.failed", charge(status="failed"))  # not a handled type: ignored
        if self.paid:
            add("payment_intent.succeeded", intent("succeeded"))
            add("charge.succeeded", charge())
        for cumulative in self.refunds:
            add("charge.refunded", charge(cumulative))
        for dispute in self.disputes:
            for n, status in enumerate(dispute.statuses):
                if n == 0:
                    kind = "created"
                elif status in FINAL_WITHDRAWN:
                    kind = "closed"
                else:
                    kind = "updated"
                obj = se.dispute(
                    id=dispute.id,
                    charge=self.charge_id,
                    payment_intent=self.pid,
                    amount=dispute.amount,
                    currency="eur",
                    status=status,
                )
                add(f"charge.dispute.{kind}", obj)
                if kind == "created" and status in CHARGEBACK:
                    add("charge.dispute.funds_withdrawn", obj)
                if kind == "closed" and status == "won":
                    add("charge.dispute.funds_reinstated", obj)
        return out


credits_st = st.one_of(
    st.integers(min_value=1, max_value=100_000).map(Decimal),
    st.integers(min_value=1, max_value=99).map(lambda n: Decimal(n).scaleb(-6)),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100_000), places=6),
)


@st.composite
def disputes(draw: st.DrawFn, amount: int) -> Dispute:
    family = draw(st.sampled_from([CHARGEBACK, INQUIRY]))
    final = draw(
        st.sampled_from(["won", "lost", None] if family == CHARGEBACK else ["warning_closed", None])
    )
    steps = list(family[: draw(st.integers(min_value=1, max_value=2))])
    if final is not None:
        steps.append(final)
    return Dispute(
        id=se.new_id("dp"),
        amount=draw(st.integers(min_value=1, max_value=amount)),
        statuses=steps,
    )


@st.composite
def payments(draw: st.DrawFn, wallet_id: str) -> Payment:
    how = draw(
        st.sampled_from(["checkout", "checkout", "async", "auto_topup", "failed", "pending"])
    )
    # Small amounts make ties (a share ending in exactly 5 at the 7th decimal) likely.
    amount = draw(
        st.one_of(
            st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=200_000)
        )
    )
    refunds: list[int] = []
    found: list[Dispute] = []
    if how in ("checkout", "async", "auto_topup"):
        refunds = sorted(draw(st.sets(st.integers(min_value=1, max_value=amount), max_size=3)))
        found = draw(st.lists(disputes(amount), max_size=2))
    return Payment(
        wallet_id=wallet_id,
        credits=draw(credits_st),
        amount=amount,
        how=how,
        refunds=refunds,
        disputes=found,
        charge_metadata=draw(st.booleans()),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, Decimal, list[Payment], list[Json], int]:
    """A wallet, its payments, and their events as delivered (shuffled, with duplicates),
    and how many threads deliver them."""
    wallet_id = f"prop-{uuid.uuid4().hex[:12]}"
    allowance = draw(st.sampled_from([ZERO, Decimal(50), Decimal("12.5")]))
    pays = draw(st.lists(payments(wallet_id), min_size=1, max_size=4))
    events: list[Json] = []
    for p in pays:
        times = draw(st.lists(st.integers(min_value=T0, max_value=T0 + 600), min_size=24))
        events.extend(p.events(sorted(times)))
    copies = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=len(events)))
    delivered = [
        e for e, n in zip(events, copies + [1] * len(events), strict=False) for _ in range(n)
    ]
    order = draw(st.permutations(range(len(delivered))))
    threads = draw(st.sampled_from([1, 1, 4]))
    return wallet_id, allowance, pays, [delivered[i] for i in order], threads


def _deliver(event: Json) -> None:
    obs = observe(event)
    if obs is None:
        return  # an event type the service does not use (charge.failed)
    for _ in range(6):  # Stripe redelivers after a 503
        try:
            Payments().record(obs)
            return
        except Contention:
            continue
    raise AssertionError(f"{event['type']} kept meeting Contention")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_the_wallet_holds_what_the_payments_facts_say(
    meter_table: str, ledger: Any, scenario: tuple[str, Decimal, list[Payment], list[Json], int]
) -> None:
    wallet_id, allowance, pays, delivered, threads = scenario
    service = Service()
    service.put_wallet(wallet_id, "enterprise", allowance)
    before = service.get_wallet(wallet_id).balance

    if threads == 1:
        for event in delivered:
            _deliver(event)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(_deliver, delivered))

    expected = {p.pid: p.expected() for p in pays}
    credited = {}
    for p in pays:
        state = service.store.get(items.payment_key(p.pid))
        assert state is not None, f"no payment item for {p.how} payment {p.pid}"
        credited[p.pid] = Decimal(state.get("credited", 0))
    assert credited == expected
    wallet = service.get_wallet(wallet_id)
    assert wallet.balance - before == sum(expected.values(), ZERO)
    assert wallet.held == 0
    ledger.check(wallet_id)


@pytest.mark.parametrize(
    ("credits", "amount", "refunded", "credited"),
    [
        ("0.000001", 2, 1, "0.000001"),  # takes 0.0000005 -> 0.000000 (to even)
        ("0.000003", 2, 1, "0.000001"),  # takes 0.0000015 -> 0.000002 (to even)
        ("0.000005", 2, 1, "0.000003"),  # takes 0.0000025 -> 0.000002 (to even)
        ("100", 3, 1, "66.666667"),  # takes 33.3333333… -> 33.333333
        ("100", 3, 2, "33.333333"),  # takes 66.6666666… -> 66.666667
        ("7", 8, 9, "0"),  # more than paid went back: nothing is left
    ],
)
def test_take_back_rounds_half_even(
    meter_table: str, ledger: Any, credits: str, amount: int, refunded: int, credited: str
) -> None:
    """The share taken back is rounded half-even to 6 decimals, ties included."""
    wallet_id = f"prop-{uuid.uuid4().hex[:12]}"
    service = Service()
    service.put_wallet(wallet_id, "enterprise", ZERO)
    pay = Payment(wallet_id, Decimal(credits), amount, "checkout", [refunded], [], True)
    assert pay.expected() == Decimal(credited)
    for event in pay.events([T0] * 8):
        _deliver(event)
    state = service.store.get(items.payment_key(pay.pid))
    assert state is not None
    assert Decimal(state["credited"]) == Decimal(credited)
    assert service.get_wallet(wallet_id).balance == Decimal(credited)
    ledger.check(wallet_id)
