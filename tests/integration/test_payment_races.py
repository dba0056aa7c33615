"""Stripe payments credited exactly once under concurrency, on DynamoDB Local
(docs/domain.md invariants 1 and 5; docs/payments.md).

``Payments.record`` merges one Stripe event's facts into the payment's item and moves the
wallet by ``target − credited`` in one transaction, conditioned on the item's version (and
the wallet's bucket-list version). These storms deliver the same events many times at once,
and different events of one payment racing each other, and check that each payment ends up
in the wallet exactly once: the balance, the payment item's ``credited``, the purchase buckets
and the stream-projected ledger (``Ledger.check``).

Threads call ``Payments`` directly, released together by a barrier (``tests.storms``); the
HTTP storms run the real webhook function in worker processes (``webhooks``), as concurrent
Lambda invocations. A delivery that ends in ``Contention`` is delivered again, as Stripe
redelivers anything that is not a 2xx.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
import stripe

from credit_meter.core import clock
from credit_meter.core.errors import Contention, InsufficientCredits
from credit_meter.metering.service import Cost, Request
from credit_meter.payments.payments import Payments, Recorded
from credit_meter.payments.stripe_webhooks import observe
from credit_meter.storage import items, store, wallet_record
from devtools import stripe_events as se
from devtools.fake_stripe import TEST_API_KEY, FakeStripe
from tests.principals import TEST_ORG
from tests.services import Service
from tests.storms import storm

pytestmark = pytest.mark.integration

Json = dict[str, Any]
ZERO = Decimal(0)
MICRO = Decimal("0.000001")
REDELIVERIES = 8  # Stripe retries for days; a test gives up after this many deliveries


# -- payments and their events ----------------------------------------------------------------


@dataclass
class Pay:
    """One payment into ``wallet_id``, and the Stripe events about it (each event has one id:
    delivering the same dict again is a redelivery)."""

    wallet_id: str
    credits: str = "500"
    amount: int = 500  # cents
    offer: str = "pack_500"
    created: int = field(default_factory=se.now)
    pid: str = field(default_factory=lambda: se.new_id("pi"))
    charge_id: str = field(default_factory=lambda: se.new_id("ch"))
    session_id: str = field(default_factory=lambda: se.new_id("cs_test", 58))

    def meta(self) -> dict[str, str]:
        return se.wallet_metadata(self.wallet_id, self.credits, self.offer)

    def completed(self, *, created: int | None = None) -> Json:
        session = se.checkout_session(
            session_id=self.session_id,
            payment_intent=self.pid,
            wallet_id=self.wallet_id,
            credits=self.credits,
            offer=self.offer,
            amount_total=self.amount,
            created=self.created,
        )
        return se.event("checkout.session.completed", session, created=created or self.created)

    def pi_succeeded(self, *, created: int | None = None) -> Json:
        intent = se.payment_intent(
            id=self.pid,
            amount=self.amount,
            metadata=self.meta(),
            latest_charge=self.charge_id,
            created=self.created,
        )
        return se.event("payment_intent.succeeded", intent, created=created or self.created)

    def charge_succeeded(self, *, created: int | None = None) -> Json:
        ch = se.charge(
            id=self.charge_id,
            payment_intent=self.pid,
            amount=self.amount,
            metadata=self.meta(),
            created=self.created,
        )
        return se.event("charge.succeeded", ch, created=created or self.created)

    def refunded(self, cumulative: int, *, created: int | None = None) -> Json:
        ch = se.charge(
            id=self.charge_id,
            payment_intent=self.pid,
            amount=self.amount,
            amount_refunded=cumulative,
            metadata=self.meta(),
            created=self.created,
        )
        return se.event("charge.refunded", ch, created=created or self.created)

    def disputed(self, kind: str, dispute_id: str, status: str, amount: int | None = None) -> Json:
        dp = se.dispute(
            id=dispute_id,
            charge=self.charge_id,
            payment_intent=self.pid,
            amount=self.amount if amount is None else amount,
            status=status,
            created=self.created,
        )
        return se.event(f"charge.dispute.{kind}", dp, created=self.created)

    def paid_events(self) -> list[Json]:
        return [self.completed(), self.pi_succeeded(), self.charge_succeeded()]


def target(credits: str, amount: int, back: int) -> Decimal:
    """What a paid payment should leave in the wallet once ``back`` cents went back."""
    c = Decimal(credits)
    share = (c * min(amount, back) / amount).quantize(MICRO, rounding=ROUND_HALF_EVEN)
    return c - share


# -- delivering them -------------------------------------------------------------------------


@dataclass
class Deliveries:
    """Records events through ``Payments`` (a fresh instance per call, as per invocation),
    redelivering on ``Contention``; counts the contentions seen."""

    contentions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event: Json) -> Recorded:
        obs = observe(event)
        assert obs is not None, f"{event['type']} was not observed"
        for _ in range(REDELIVERIES):
            try:
                return Payments().record(obs)
            except Contention:
                with self.lock:
                    self.contentions += 1
        raise AssertionError(f"{event['type']} kept meeting Contention")

    def storm(self, events: list[Json]) -> list[Recorded]:
        results = storm(len(events), lambda i: self.record(events[i]))
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors
        return [r for r in results if isinstance(r, Recorded)]


@pytest.fixture
def payments(meter_table: str) -> Service:
    service = Service()
    service.store.client  # noqa: B018 - make the shared client now, not from many threads
    return service


@pytest.fixture
def deliveries(payments: Service) -> Deliveries:
    return Deliveries()


def _wallet(service: Service, allowance: str = "0") -> str:
    wid = f"pay-{uuid.uuid4().hex[:10]}"
    # in the test caller's organisation: some tests go on through the API
    service.put_wallet(wid, "enterprise", Decimal(allowance), org_id=TEST_ORG)
    return wid


def _payment_item(service: Service, pid: str) -> Json:
    state = service.store.get(items.payment_key(pid))
    assert state is not None, f"no payment item for {pid}"
    return state


def _purchase_entries(entries: list[Json], pid: str) -> list[Json]:
    """The ledger entries a payment made: its grants and what refunds or disputes took back
    (their reasons name the payment)."""
    return [e for e in entries if f"payment {pid}" in str(e.get("reason", ""))]


def _assert_credited_once(
    service: Service, ledger: Any, pay: Pay, expected: Decimal, *, base: Decimal = ZERO
) -> list[Json]:
    """The wallet holds exactly ``expected`` from ``pay`` (its only payment), the item agrees,
    the ledger passes its checks and its entries naming the payment (grants, take-backs) add
    up to ``expected``; returns the wallet's entries."""
    wallet = service.get_wallet(pay.wallet_id)
    assert wallet.balance == base + expected
    assert Decimal(_payment_item(service, pay.pid)["credited"]) == expected
    entries = ledger.check(pay.wallet_id)
    mine = _purchase_entries(entries, pay.pid)
    assert sum((e["credits"] for e in mine), ZERO) == expected
    assert len({e["transaction_id"] for e in mine}) == len(mine)
    return entries


# -- one payment, many deliveries ------------------------------------------------------------


def test_duplicate_completions_credit_each_payment_once(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """Four payments into one wallet, each checkout.session.completed delivered ×5 at once."""
    wid = _wallet(payments)
    pays = [Pay(wid, credits=str(100 * (n + 1)), amount=100 * (n + 1)) for n in range(4)]
    events = [p.completed() for p in pays for _ in range(5)]
    random.shuffle(events)

    results = deliveries.storm(events)

    # Per payment: one delivery moved the wallet by all the credits, four moved nothing.
    for p in pays:
        moved = [r.delta for r in results if r.payment_id == p.pid]
        assert sorted(moved) == [ZERO] * 4 + [Decimal(p.credits)]
        assert all(r.status == "paid" for r in results if r.payment_id == p.pid)
    wallet = payments.get_wallet(wid)
    assert wallet.balance == sum(Decimal(p.credits) for p in pays) == 1000
    purchases = [v for v in wallet.buckets if v.bucket.source == "purchase"]
    assert sorted(v.remaining for v in purchases) == [100, 200, 300, 400]
    entries = ledger.check(wid)
    grants = [e for e in entries if e["type"] == "grant"]
    assert len(grants) == 4
    for p in pays:
        assert Decimal(_payment_item(payments, p.pid)["credited"]) == Decimal(p.credits)
        assert len(_purchase_entries(entries, p.pid)) == 1
    lines, _ = payments.payments(wid, 50, None)
    assert sorted(line.payment_id for line in lines) == sorted(p.pid for p in pays)


def test_completion_intent_and_charge_racing_credit_once(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """checkout.session.completed, payment_intent.succeeded and charge.succeeded of one
    payment, each delivered ×6, all at once (18 threads)."""
    wid = _wallet(payments, "25")
    pay = Pay(wid, credits="2500", amount=2000, offer="pack_2500")
    events = pay.paid_events() * 6
    random.shuffle(events)

    results = deliveries.storm(events)

    assert sorted(r.delta for r in results) == [ZERO] * 17 + [Decimal(2500)]
    entries = _assert_credited_once(payments, ledger, pay, Decimal(2500), base=Decimal(25))
    assert [e["type"] for e in _purchase_entries(entries, pay.pid)] == ["grant"]
    wallet = payments.get_wallet(wid)
    assert [v.remaining for v in wallet.buckets if v.bucket.source == "purchase"] == [2500]
    state = _payment_item(payments, pay.pid)
    assert state["paid"] is True and state["session_id"] == pay.session_id
    assert state["receipt_url"]  # the charge's facts were merged too
    lines, _ = payments.payments(wid, 50, None)
    assert [(line.payment_id, line.status, line.credited) for line in lines] == [
        (pay.pid, "paid", Decimal(2500))
    ]


def test_an_earlier_event_delivered_later_keeps_one_payments_line(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """Stripe creates payment_intent.succeeded a moment before checkout.session.completed,
    but delivers in no particular order: the completion may well arrive first. (At 3830723
    the line's key followed the earliest ``created`` seen, so this listed the payment twice.)"""
    wid = _wallet(payments)
    pay = Pay(wid)
    deliveries.record(pay.completed(created=pay.created + 2))
    deliveries.record(pay.pi_succeeded(created=pay.created))

    _assert_credited_once(payments, ledger, pay, Decimal(500))
    lines, _ = payments.payments(wid, 50, None)
    assert [line.payment_id for line in lines] == [pay.pid]


# -- refunds and disputes racing the payment ---------------------------------------------------


@pytest.mark.parametrize("order", ["refund-first", "completion-first", "concurrent"])
@pytest.mark.parametrize("refunded", [500, 125], ids=["full", "partial"])
def test_refund_and_completion_in_any_order(
    payments: Service, deliveries: Deliveries, ledger: Any, order: str, refunded: int
) -> None:
    wid = _wallet(payments)
    pay = Pay(wid, credits="333.333333", amount=500, offer="fiat")
    paid = pay.paid_events()
    refund = pay.refunded(refunded)
    if order == "refund-first":
        deliveries.storm([refund] * 5)
        deliveries.storm(paid * 5)
    elif order == "completion-first":
        deliveries.storm(paid * 5)
        deliveries.storm([refund] * 5)
    else:
        events = [*paid * 5, *[refund] * 5]
        random.shuffle(events)
        deliveries.storm(events)

    expected = target(pay.credits, pay.amount, refunded)
    _assert_credited_once(payments, ledger, pay, expected)
    assert _payment_item(payments, pay.pid)["refunded"] == refunded
    lines, _ = payments.payments(wid, 50, None)
    assert [(line.status, line.refunded_amount) for line in lines] == [("refunded", refunded)]


def test_growing_partial_refunds_delivered_out_of_order(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """Three partial refunds (cumulative 100, 250, 400 of 1000) and the payment, each ×4,
    at once: only the largest cumulative amount counts."""
    wid = _wallet(payments, "10")
    pay = Pay(wid, credits="1000", amount=1000, offer="fiat")
    events = [*pay.paid_events(), *(pay.refunded(c) for c in (100, 250, 400))] * 4
    random.shuffle(events)

    deliveries.storm(events)

    _assert_credited_once(payments, ledger, pay, Decimal(600), base=Decimal(10))


def test_two_take_backs_in_one_millisecond_are_two_transactions(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """A partial refund and a dispute of one payment, recorded in the same millisecond (the
    service's clock held still): two take-backs, so two ledger transactions."""
    wid = _wallet(payments)
    pay = Pay(wid)
    deliveries.record(pay.completed())
    now = clock.now_ts()
    clock.set_clock(lambda: now)
    try:
        deliveries.record(pay.refunded(100))
        deliveries.record(pay.disputed("created", se.new_id("dp"), "needs_response", 150))
    finally:
        clock.set_clock(None)

    entries = _assert_credited_once(payments, ledger, pay, Decimal(250))
    reversals = [e["transaction_id"] for e in entries if e["type"] == "reversal"]
    assert len(set(reversals)) == 2, reversals


@pytest.mark.parametrize(
    ("statuses", "withdrawn"),
    [
        (("needs_response", "under_review", "won"), False),
        (("needs_response", "under_review", "lost"), True),
        (("warning_needs_response", "warning_under_review", "warning_closed"), False),
    ],
    ids=["won", "lost", "inquiry"],
)
def test_dispute_created_updated_and_closed_racing(
    payments: Service,
    deliveries: Deliveries,
    ledger: Any,
    statuses: tuple[str, str, str],
    withdrawn: bool,
) -> None:
    """A dispute's created, updated and closed events (×4 each) race the payment's (×4)."""
    wid = _wallet(payments)
    pay = Pay(wid, credits="500", amount=500)
    did = se.new_id("dp")
    opened, updated, closed = statuses
    disputes = [
        pay.disputed("created", did, opened, 300),
        pay.disputed("updated", did, updated, 300),
        pay.disputed("closed", did, closed, 300),
    ]
    events = (pay.paid_events() + disputes) * 4
    random.shuffle(events)

    deliveries.storm(events)

    expected = target(pay.credits, pay.amount, 300 if withdrawn else 0)
    _assert_credited_once(payments, ledger, pay, expected)
    state = _payment_item(payments, pay.pid)
    assert state["disputes"][did]["status"] == closed


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_dispute_opened_then_closed_after_the_credit(
    payments: Service, deliveries: Deliveries, ledger: Any, outcome: str
) -> None:
    """Credited, then the dispute opens (credits taken back), then it closes: a win gives them
    back as a new grant, a loss keeps them out — whatever order the ×5 duplicates land in."""
    wid = _wallet(payments)
    pay = Pay(wid)
    did = se.new_id("dp")
    deliveries.storm(pay.paid_events() * 3)
    opened = deliveries.storm([pay.disputed("created", did, "needs_response")] * 5)
    assert sorted(r.delta for r in opened) == [Decimal(-500)] + [ZERO] * 4
    assert payments.get_wallet(wid).balance == 0

    events = [
        *[pay.disputed("closed", did, outcome)] * 5,
        *[pay.disputed("funds_withdrawn", did, "needs_response")] * 5,
    ]
    if outcome == "won":
        events += [pay.disputed("funds_reinstated", did, "won")] * 5
    random.shuffle(events)
    deliveries.storm(events)

    expected = Decimal(500) if outcome == "won" else ZERO
    entries = _assert_credited_once(payments, ledger, pay, expected)
    kinds = Counter(e["type"] for e in _purchase_entries(entries, pay.pid))
    assert kinds == (
        Counter({"grant": 2, "reversal": 1})
        if outcome == "won"
        else Counter({"grant": 1, "reversal": 1})
    )


# -- many payments into one busy wallet ------------------------------------------------------


PAYMENTS = 20
SPENDERS = 12
SPENDS = 8


@dataclass
class Spenders:
    """Threads metering one wallet: charges, reserve→commit (never above the hold) and
    reserve→release, refused ones counted; ``spent`` is what was accepted and charged."""

    wallet_id: str
    spent: list[Decimal] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spend(self, n: int) -> None:
        rnd = random.Random(1000 + n)
        service = Service()
        wid = self.wallet_id
        for k in range(SPENDS):
            credits = Decimal(rnd.randint(1, 12))
            req = Request(request_hash=uuid.uuid4().hex)
            try:
                if k % 3 == 0:
                    charged = service.charge(wid, Cost(credits), req, "chat", f"m{n}").charged
                else:
                    held = service.reserve(wid, Cost(credits), req, "agent", f"m{n}")
                    end = Request(request_hash=uuid.uuid4().hex)
                    if k % 3 == 1:
                        cost = Cost(credits - Decimal(rnd.randint(0, int(credits))) / 2)
                        charged = service.commit(wid, held.reservation_id, cost, end).charged
                    else:
                        service.release(wid, held.reservation_id, end)
                        charged = ZERO
            except InsufficientCredits:
                with self.lock:
                    self.refused["charge" if k % 3 == 0 else "reserve"] += 1
                continue
            with self.lock:
                self.spent.append(charged)

    def total(self) -> Decimal:
        return sum(self.spent, ZERO)


def test_many_payments_into_one_wallet_while_it_is_metered(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """20 payments (each: completion, intent and charge, the completion twice) land in one
    wallet while 12 threads reserve/commit, reserve/release and charge on it (32 threads)."""
    wid = _wallet(payments, "30")
    pays = [Pay(wid, credits=str(40 + n), amount=500) for n in range(PAYMENTS)]
    spenders = Spenders(wid)

    def pay_in(n: int) -> None:
        p = pays[n]
        events = [*p.paid_events(), p.completed()]
        random.Random(n).shuffle(events)
        for event in events:
            deliveries.record(event)

    results = storm(PAYMENTS + SPENDERS, lambda i: pay_in(i) if i < PAYMENTS else spenders.spend(i))

    assert not [r for r in results if isinstance(r, Exception)]
    credited = sum(Decimal(p.credits) for p in pays)
    wallet = payments.get_wallet(wid)
    assert wallet.held == 0
    assert wallet.balance == Decimal(30) + credited - spenders.total()
    assert wallet.available == wallet.balance >= 0
    for p in pays:
        assert Decimal(_payment_item(payments, p.pid)["credited"]) == Decimal(p.credits)
    entries = ledger.check(wid)
    grants = [e for e in entries if e["type"] == "grant" and e.get("source") == "purchase"]
    assert sorted(e["reason"] for e in grants) == sorted(f"payment {p.pid}" for p in pays)
    # Payments only add and commits here never charge more than was held, so no image of
    # the wallet ever had available < 0.
    changes = _wallet_changes(ledger, wid)
    assert len(changes) >= PAYMENTS
    for _, image in changes:
        assert image["avail"] >= 0, image
        assert image["avail"] == image["bal"] - image["held"]
    print(f"refused {dict(spenders.refused)}, contentions {deliveries.contentions}")


def test_refunds_racing_spenders_may_overdraw_but_the_ledger_adds_up(
    payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """A paid pack is being spent by 12 threads while its full refund (×5) and a second
    payment (×3 each event) arrive: the take-back may leave the balance negative
    (docs/domain.md, the overdraft rule), but no hold or charge is ever accepted without
    enough available, and everything adds up."""
    wid = _wallet(payments, "20")
    first, second = Pay(wid, credits="150", amount=500), Pay(wid, credits="60", amount=600)
    deliveries.storm(first.paid_events())
    spenders = Spenders(wid)
    events = [*[first.refunded(500)] * 5, *second.paid_events() * 3]
    random.shuffle(events)

    results = storm(
        len(events) + SPENDERS,
        lambda i: deliveries.record(events[i]) if i < len(events) else spenders.spend(i),
    )

    assert not [r for r in results if isinstance(r, Exception)]
    wallet = payments.get_wallet(wid)
    assert wallet.held == 0
    assert wallet.balance == Decimal(20) + Decimal(60) - spenders.total()
    assert Decimal(_payment_item(payments, first.pid)["credited"]) == 0
    assert Decimal(_payment_item(payments, second.pid)["credited"]) == 60
    entries = ledger.check(wid)
    assert [e["credits"] for e in _purchase_entries(entries, first.pid)] == [150, -150]
    for old, new in _wallet_changes(ledger, wid):
        assert new["avail"] == new["bal"] - new["held"]
        opened = set(new.get("hd", {})) - set((old or {}).get("hd", {}))
        charged = any(p["ty"] == "charge" for p in new.get("posts") or [])
        if opened or (charged and new["seq"] != (old or {}).get("seq")):
            assert new["avail"] >= 0, (old, new)
    print(f"refused {dict(spenders.refused)}, contentions {deliveries.contentions}")


def _wallet_changes(ledger: Any, wallet_id: str) -> list[tuple[Json | None, Json]]:
    """(old image, new image) of every write of the wallet item the stream carried (after
    ``ledger.check`` drained it), amounts as Decimals."""
    key = {"pk": {"S": items.wallet_pk(wallet_id)}, "sk": {"S": wallet_record.WALLET_SK}}
    found = []
    for record in ledger.records:
        change = record.get("dynamodb", {})
        new, old = change.get("NewImage"), change.get("OldImage")
        if new and {"pk": new.get("pk"), "sk": new.get("sk")} == key:
            found.append((store.from_item(old) if old else None, store.from_item(new)))
    return found


# -- the webhook function, concurrently in worker processes ----------------------------------


def test_signed_duplicates_through_the_webhook_function_credit_once(
    webhooks: Any, webhook_ledger: Any
) -> None:
    """Every event of a payment ×5, signed, posted at once to concurrent invocations of the
    real webhook function; a forged copy is refused and changes nothing."""
    service = Service()
    wid = _wallet(service, "5")
    pay = Pay(wid, credits="2500", amount=2000, offer="pack_2500")
    requests = [webhooks.request(e) for e in pay.paid_events() for _ in range(5)]
    random.shuffle(requests)
    forged = webhooks.request(pay.completed(), secret="whsec_test_wrong_0000000000")

    answers = webhooks.post_all([*requests, forged])

    assert [code for code, _ in answers] == [200] * 15 + [400]
    assert all(body["handled"] and body["payment_id"] == pay.pid for _, body in answers[:15])
    assert answers[-1][1]["type"] == "/problems/invalid-signature"
    entries = _assert_credited_once(service, webhook_ledger, pay, Decimal(2500), base=Decimal(5))
    assert [e["type"] for e in _purchase_entries(entries, pay.pid)] == ["grant"]

    # Then a partial refund and a dispute, each ×5 at once, with more duplicates of the rest.
    did = se.new_id("dp")
    later = [pay.refunded(500), pay.disputed("created", did, "needs_response", 500)] * 5
    later += pay.paid_events()
    answers = webhooks.post_all([webhooks.request(e) for e in later])
    assert {code for code, _ in answers} == {200}
    # 500 refunded and 500 disputed of 2000 cents: half the credits went back.
    _assert_credited_once(service, webhook_ledger, pay, Decimal(1250), base=Decimal(5))


def test_many_payments_through_the_webhook_function(webhooks: Any, webhook_ledger: Any) -> None:
    """Ten payments into one wallet, their events ×2, posted at once: each credited once."""
    service = Service()
    wid = _wallet(service)
    pays = [Pay(wid, credits=str(10 * (n + 1)), amount=100) for n in range(10)]
    events = [e for p in pays for e in (p.completed(), p.pi_succeeded())] * 2
    random.shuffle(events)

    answers = webhooks.post_all([webhooks.request(e) for e in events])

    # A 503 (Contention) asks Stripe to redeliver; do so until every event was taken.
    for _ in range(REDELIVERIES):
        again = [events[i] for i, (code, _) in enumerate(answers) if code == 503]
        if not again:
            break
        events, answers = again, webhooks.post_all([webhooks.request(e) for e in again])
    assert {code for code, _ in answers} == {200}
    assert service.get_wallet(wid).balance == sum(Decimal(p.credits) for p in pays)
    entries = webhook_ledger.check(wid)
    for p in pays:
        assert len(_purchase_entries(entries, p.pid)) == 1
        assert Decimal(_payment_item(service, p.pid)["credited"]) == Decimal(p.credits)


# -- a top-up request sent twice (getlago/lago-api#5870) --------------------------------------


@pytest.fixture
def fake_stripe(meter_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    """Stripe's API on 127.0.0.1 for the metering function's checkouts, and the endpoint
    secret for the webhook function, both in this process."""
    from credit_meter.payments import stripe_gateway

    with FakeStripe() as fake:
        monkeypatch.setenv("STRIPE_API_KEY", TEST_API_KEY)
        monkeypatch.setenv("STRIPE_API_BASE", fake.base_url)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_fake_local_only")
        stripe_gateway.reset_client()
        try:
            yield fake
        finally:
            stripe_gateway.reset_client()


def _deliver_in_process(event: Json) -> tuple[int, Any]:
    from stripe_webhook.app import handler

    from devtools.apigw import FakeContext, http_event

    payload = se.encode(event)
    headers = {"stripe-signature": se.sign(payload, "whsec_test_fake_local_only")}
    response = handler(http_event("POST", "/v1/webhooks/stripe", payload, headers), FakeContext())
    return response["statusCode"], response.get("body")


def _paid_checkout_events(fake: FakeStripe, session_id: str) -> list[Json]:
    session = fake.complete_checkout(session_id)
    intent = fake.payment_intent(session["payment_intent"])
    ch = fake.charge(intent["latest_charge"])
    return [
        se.event("charge.succeeded", ch),
        se.event("payment_intent.succeeded", intent),
        se.event("checkout.session.completed", session),
    ]


def test_top_up_request_sent_twice_grants_once(
    fake_stripe: FakeStripe, api: Any, payments: Service, ledger: Any
) -> None:
    """Lago accepted the same top-up request twice and credited both. Here a top-up is a
    checkout: the same request (same Idempotency-Key) twice is the same Checkout Session,
    and only its payment, however often Stripe reports it, puts credits in the wallet."""
    wid = _wallet(payments, "10")
    body = {
        "pack": "pack_500",
        "success_url": "http://127.0.0.1:3000/ok",
        "cancel_url": "http://127.0.0.1:3000/cancel",
    }
    headers = {"Idempotency-Key": "top-up-1"}
    first = api("POST", f"/v1/wallets/{wid}/checkout", body, headers)
    second = api("POST", f"/v1/wallets/{wid}/checkout", body, headers)

    assert first[0] == second[0] == 201
    assert first[1]["checkout_session_id"] == second[1]["checkout_session_id"]
    assert payments.get_wallet(wid).balance == 10  # a checkout alone grants nothing

    events = _paid_checkout_events(fake_stripe, first[1]["checkout_session_id"])
    for event in events * 2:
        assert _deliver_in_process(event)[0] == 200
    wallet = payments.get_wallet(wid)
    assert wallet.balance == 510
    assert [v.remaining for v in wallet.buckets if v.bucket.source == "purchase"] == [500]
    entries = ledger.check(wid)
    assert [e["credits"] for e in entries if e["type"] == "grant"] == [10, 500]
    status, listed = api("GET", f"/v1/wallets/{wid}/payments")
    assert status == 200 and len(listed["items"]) == 1


def test_top_up_request_sent_twice_at_once_is_one_checkout(
    fake_stripe: FakeStripe, payments: Service, deliveries: Deliveries, ledger: Any
) -> None:
    """The same checkout request ×16 at once (same key): one session; its events ×5 at once
    credit it once. Without a key two requests are two sessions, and only a paid one counts."""
    from credit_meter.payments.stripe_gateway import StripeGateway

    wid = _wallet(payments)
    # Retries as the service's own client makes them (safe: the same idempotency key); the
    # stand-in's small listen backlog may reset a connection when 16 arrive at once.
    client = stripe.StripeClient(
        TEST_API_KEY, base_addresses={"api": fake_stripe.base_url}, max_network_retries=3
    )

    def checkout(key: str | None) -> str:
        done = Payments().checkout(
            wid,
            "pack_500",
            None,
            None,
            "http://127.0.0.1:3000/ok",
            "http://127.0.0.1:3000/cancel",
            False,
            key,
            lambda: StripeGateway(client),
        )
        return done.checkout_session_id

    sessions = storm(16, lambda i: checkout("same-key"))
    assert len(set(sessions)) == 1, sessions
    session_id = sessions[0]
    assert isinstance(session_id, str)
    deliveries.storm(_paid_checkout_events(fake_stripe, session_id) * 5)
    assert payments.get_wallet(wid).balance == 500

    unkeyed = {checkout(None), checkout(None)}
    assert len(unkeyed) == 2
    deliveries.storm(_paid_checkout_events(fake_stripe, sorted(unkeyed)[0]) * 5)
    wallet = payments.get_wallet(wid)
    assert wallet.balance == 1000
    entries = ledger.check(wid)
    assert [e["credits"] for e in entries if e["type"] == "grant"] == [500, 500]
