"""Top-ups with Stripe (issue "Top-ups with Stripe"): the webhook credits each payment exactly
once, refunds and disputes take their share back, checkouts go to Stripe, and the payments
list, invoices and ledger show it all.

Everything goes through the real handlers: signed events are posted to the Stripe webhook
function (``webhook``: an API Gateway HTTP API v2 event, signed with the function's fake
secret by default), the routes to the metering function (``api``), and checkouts reach a fake
Stripe API on 127.0.0.1 (``fake_stripe``, ``devtools.fake_stripe``) through the real
stripe-python client. Each test has a table of its own. Wallet ``w1`` is on the free plan
(50 credits) unless a test says otherwise; the pack sold is ``pack_500`` (500 credits for
$5, 500 cents) unless a test says otherwise.

Signatures are checked by the stripe library against the real time, so events are signed
"now"; their ``created`` (which orders the payments list) is set by each test.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest

from credit_meter.billing.periods import Periods
from credit_meter.core import clock
from credit_meter.storage import items
from credit_meter.storage.store import Store
from devtools import stripe_events as se
from tests.helpers import PROBLEM_JSON, ok, pages, problem

Api = Callable[..., tuple[int, dict[str, str], Any]]
Json = dict[str, Any]

pytestmark = pytest.mark.usefixtures("fresh_table")

W = "/v1/wallets/w1"
URLS = {
    "success_url": "https://app.example.test/billing/done?session={CHECKOUT_SESSION_ID}",
    "cancel_url": "https://app.example.test/billing",
}


# -- helpers --------------------------------------------------------------------------------


def create(api: Api, wallet_id: str = "w1", plan: str = "free") -> Json:
    return dict(ok(api("PUT", f"/v1/wallets/{wallet_id}", {"plan": plan}), 201))


def wallet(api: Api, wallet_id: str = "w1") -> Json:
    return dict(ok(api("GET", f"/v1/wallets/{wallet_id}"), 200))


def balance(api: Api, wallet_id: str = "w1") -> Decimal:
    return Decimal(wallet(api, wallet_id)["balance"])


def money(api: Api, wallet_id: str = "w1") -> tuple[str, str, str]:
    body = wallet(api, wallet_id)
    return body["balance"], body["held"], body["available"]


def payment_item(payment_id: str) -> Json | None:
    return Store().get(items.payment_key(payment_id))


def payments(api: Api, wallet_id: str = "w1") -> list[Json]:
    return pages(api, f"/v1/wallets/{wallet_id}/payments")


def ledger(api: Api, project: Callable[[], None], wallet_id: str = "w1") -> list[Json]:
    """The wallet's ledger entries, oldest first."""
    project()
    return list(reversed(pages(api, f"/v1/wallets/{wallet_id}/transactions")))


def handled(webhook: Callable[..., Any], evt: Json) -> Json:
    """Deliver ``evt``; it must be accepted and used."""
    status, headers, body = webhook(evt)
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert body["received"] is True and body["handled"] is True, body
    return dict(body)


def deliver_all(webhook: Callable[..., Any], *events: Json) -> None:
    for evt in events:
        handled(webhook, evt)


def emitted_metrics(out: str) -> list[str]:
    """The names of the EMF metrics printed in ``out``."""
    names: list[str] = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            names.extend(m["Name"] for m in directive["Metrics"])
    return names


@dataclass
class Pay:
    """One payment told by Stripe's events: a checkout (or an auto top-up) of ``credits`` for
    ``amount`` (smallest unit) into ``wallet_id``; every object it builds names the same
    PaymentIntent, charge and session. ``after`` offsets are seconds after ``created``."""

    wallet_id: str = "w1"
    credits: str = "500"
    amount: int = 500
    offer: str = "pack_500"
    currency: str = "usd"
    kind: str = "checkout"
    crossing: int | None = None
    customer: str | None = "cus_unitFakeBuyer01"
    created: int = field(default_factory=se.now)
    pi: str = field(default_factory=lambda: se.new_id("pi"))
    charge_id: str = field(default_factory=lambda: se.new_id("ch"))
    session_id: str = field(default_factory=lambda: se.new_id("cs_test", 58))

    @property
    def metadata(self) -> dict[str, str]:
        return se.wallet_metadata(
            self.wallet_id, self.credits, self.offer, kind=self.kind, crossing=self.crossing
        )

    def session(self, payment_status: str = "paid", invoice: str | None = None) -> Json:
        return se.checkout_session(
            session_id=self.session_id,
            payment_intent=self.pi,
            wallet_id=self.wallet_id,
            amount_total=self.amount,
            currency=self.currency,
            payment_status=payment_status,
            customer=self.customer,
            metadata=self.metadata,
            invoice=invoice,
            created=self.created,
        )

    def intent(self, status: str = "succeeded", payment_method: str = "pm_card_visa") -> Json:
        error = (
            se.card_error(charge=self.charge_id) if status == "requires_payment_method" else None
        )
        return se.payment_intent(
            id=self.pi,
            amount=self.amount,
            currency=self.currency,
            status=status,
            metadata=self.metadata,
            customer=self.customer,
            payment_method=None if error else payment_method,
            latest_charge=self.charge_id,
            last_payment_error=error,
            created=self.created,
        )

    def charge(self, refunded: int = 0) -> Json:
        return se.charge(
            id=self.charge_id,
            payment_intent=self.pi,
            amount=self.amount,
            amount_refunded=refunded,
            currency=self.currency,
            metadata=self.metadata,
            customer=self.customer,
            created=self.created,
        )

    def dispute_object(self, status: str, amount: int | None, dispute_id: str | None) -> Json:
        return se.dispute(
            id=dispute_id or "dp_" + self.pi[3:],
            charge=self.charge_id,
            payment_intent=self.pi,
            amount=self.amount if amount is None else amount,
            currency=self.currency,
            status=status,
            created=self.created,
        )

    # -- events -----------------------------------------------------------------------------

    def event(self, kind: str, obj: Json, after: int = 0) -> Json:
        return se.event(kind, obj, created=self.created + after)

    def completed(self, paid: bool = True, invoice: str | None = None, after: int = 0) -> Json:
        session = self.session("paid" if paid else "unpaid", invoice)
        return self.event("checkout.session.completed", session, after)

    def async_succeeded(self, after: int = 60) -> Json:
        return self.event("checkout.session.async_payment_succeeded", self.session("paid"), after)

    def async_failed(self, after: int = 60) -> Json:
        return self.event("checkout.session.async_payment_failed", self.session("unpaid"), after)

    def succeeded(self, after: int = 1) -> Json:
        return self.event("payment_intent.succeeded", self.intent(), after)

    def payment_failed(self, after: int = 1) -> Json:
        return self.event(
            "payment_intent.payment_failed", self.intent("requires_payment_method"), after
        )

    def charge_succeeded(self, after: int = 1) -> Json:
        return self.event("charge.succeeded", self.charge(), after)

    def refunded(self, cumulative: int, after: int = 100) -> Json:
        return self.event("charge.refunded", self.charge(cumulative), after)

    def disputed(
        self,
        kind: str,
        status: str,
        amount: int | None = None,
        dispute_id: str | None = None,
        after: int = 200,
    ) -> Json:
        return self.event(
            f"charge.dispute.{kind}", self.dispute_object(status, amount, dispute_id), after
        )


# -- each handled event type ----------------------------------------------------------------

Step = Callable[[Pay], Json]


def step_case(
    name: str,
    before: list[Step],
    event: Step,
    credited: str,
    status: str,
    pay: dict[str, Any] | None = None,
) -> Any:
    return pytest.param(before, event, credited, status, pay or {}, id=name)


STEP_CASES = [
    step_case("checkout.session.completed-paid", [], lambda p: p.completed(), "500", "paid"),
    step_case(
        "checkout.session.completed-unpaid",
        [],
        lambda p: p.completed(paid=False),
        "0",
        "pending",
    ),
    step_case(
        "checkout.session.async_payment_succeeded",
        [lambda p: p.completed(paid=False)],
        lambda p: p.async_succeeded(),
        "500",
        "paid",
    ),
    step_case(
        "checkout.session.async_payment_failed",
        [lambda p: p.completed(paid=False)],
        lambda p: p.async_failed(),
        "0",
        "failed",
    ),
    step_case("payment_intent.succeeded", [], lambda p: p.succeeded(), "500", "paid"),
    step_case(
        "payment_intent.payment_failed-auto-topup",
        [],
        lambda p: p.payment_failed(),
        "0",
        "failed",
        {"kind": "auto_topup", "crossing": 1},
    ),
    step_case(
        "charge.succeeded-after-payment",
        [lambda p: p.completed()],
        lambda p: p.charge_succeeded(),
        "500",
        "paid",
    ),
    step_case(
        "charge.refunded-partial",
        [lambda p: p.completed()],
        lambda p: p.refunded(100),
        "400",
        "refunded",
    ),
    step_case(
        "charge.refunded-full",
        [lambda p: p.completed()],
        lambda p: p.refunded(500),
        "0",
        "refunded",
    ),
    step_case(
        "charge.dispute.created",
        [lambda p: p.completed()],
        lambda p: p.disputed("created", "needs_response"),
        "0",
        "disputed",
    ),
    step_case(
        "charge.dispute.created-partial-amount",
        [lambda p: p.completed()],
        lambda p: p.disputed("created", "needs_response", amount=125),
        "375",
        "disputed",
    ),
    step_case(
        "charge.dispute.updated-under_review",
        [lambda p: p.completed()],
        lambda p: p.disputed("updated", "under_review"),
        "0",
        "disputed",
    ),
    step_case(
        "charge.dispute.funds_withdrawn",
        [lambda p: p.completed()],
        lambda p: p.disputed("funds_withdrawn", "needs_response"),
        "0",
        "disputed",
    ),
    step_case(
        # an inquiry (warning_*): no funds have left, so nothing is taken back yet
        "charge.dispute.created-warning_needs_response",
        [lambda p: p.completed()],
        lambda p: p.disputed("created", "warning_needs_response"),
        "500",
        "disputed",
    ),
    step_case(
        "charge.dispute.closed-lost",
        [lambda p: p.completed(), lambda p: p.disputed("created", "needs_response")],
        lambda p: p.disputed("closed", "lost", after=300),
        "0",
        "disputed",
    ),
    step_case(
        "charge.dispute.closed-won",
        [lambda p: p.completed(), lambda p: p.disputed("created", "needs_response")],
        lambda p: p.disputed("closed", "won", after=300),
        "500",
        "paid",
    ),
    step_case(
        "charge.dispute.funds_reinstated",
        [lambda p: p.completed(), lambda p: p.disputed("created", "needs_response")],
        lambda p: p.disputed("funds_reinstated", "won", after=300),
        "500",
        "paid",
    ),
    step_case(
        "charge.dispute.closed-warning_closed",
        [lambda p: p.completed(), lambda p: p.disputed("created", "warning_needs_response")],
        lambda p: p.disputed("closed", "warning_closed", after=300),
        "500",
        "paid",
    ),
]


@pytest.mark.parametrize(("before", "event", "credited", "status", "pay"), STEP_CASES)
def test_each_handled_event_type(
    api: Api,
    webhook: Callable[..., Any],
    before: list[Step],
    event: Step,
    credited: str,
    status: str,
    pay: dict[str, Any],
) -> None:
    create(api)
    p = Pay(**pay)
    deliver_all(webhook, *(make(p) for make in before))

    body = handled(webhook, event(p))

    assert body["payment_id"] == p.pi and body["status"] == status
    assert balance(api) == 50 + Decimal(credited)
    (line,) = payments(api)
    assert (line["payment_id"], line["status"], line["credited"]) == (p.pi, status, credited)
    state = payment_item(p.pi)
    assert state is not None and Decimal(state["credited"]) == Decimal(credited)


def test_a_paid_checkout_credits_exactly_the_metadata_credits_once(
    api: Api, webhook: Callable[..., Any], project_ledger: Callable[[], None]
) -> None:
    create(api)
    # an odd number of credits, to the sixth decimal: exact decimals all the way
    p = Pay(credits="123.456789", amount=999)
    # Stripe tells one payment three times: the session, the PaymentIntent, the charge
    deliver_all(webhook, p.completed(), p.succeeded(), p.charge_succeeded())

    assert money(api) == ("173.456789", "0", "173.456789")
    state = payment_item(p.pi)
    assert state is not None
    assert Decimal(state["credited"]) == Decimal("123.456789")
    assert len(state["gids"]) == 1  # one purchase bucket
    purchases = [b for b in wallet(api)["buckets"] if b["source"] == "purchase"]
    assert purchases == [
        {"source": "purchase", "remaining": "123.456789", "expires_at": None, "priority": 20}
    ]
    grants = [e for e in ledger(api, project_ledger) if e["type"] == "grant"]
    assert [(g["credits"], g["source"]) for g in grants] == [
        ("50", "monthly"),
        ("123.456789", "purchase"),
    ]


@pytest.mark.parametrize(
    "story",
    [
        pytest.param(["completed"], id="completed"),
        pytest.param(["completed", "succeeded"], id="completed-then-succeeded"),
        pytest.param(["completed", "succeeded", "refunded"], id="then-a-partial-refund"),
        pytest.param(["completed", "dispute", "won"], id="dispute-created-then-won"),
    ],
)
def test_five_deliveries_of_each_event_change_nothing_after_the_first(
    api: Api, webhook: Callable[..., Any], table_items: Any, story: list[str]
) -> None:
    create(api)
    p = Pay()
    events = {
        "completed": p.completed(),
        "succeeded": p.succeeded(),
        "refunded": p.refunded(200),
        "dispute": p.disputed("created", "needs_response"),
        "won": p.disputed("closed", "won", after=300),
    }
    for name in story:
        handled(webhook, events[name])
        after_first = table_items()
        for _ in range(4):  # Stripe retries the same event
            handled(webhook, events[name])
        assert table_items() == after_first, name
    expected = {"refunded": "350", "dispute": "50"}.get(story[-1], "550")
    assert balance(api) == Decimal(expected)
    (line,) = payments(api)
    assert line["credited"] == str(Decimal(expected) - 50)


def test_the_same_fact_in_a_new_event_is_not_counted_twice(
    api: Api, webhook: Callable[..., Any]
) -> None:
    # Stripe may send one fact in several events (another id): the facts count, not the events
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    handled(webhook, p.completed(after=5))
    handled(webhook, p.refunded(100))
    handled(webhook, p.refunded(100, after=101))
    assert balance(api) == Decimal(450)


# -- deliveries out of order ----------------------------------------------------------------


def test_a_refund_delivered_before_the_completion_is_never_credited(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.refunded(500, after=100))
    assert balance(api) == 50
    handled(webhook, p.completed())
    handled(webhook, p.succeeded())
    assert balance(api) == 50  # paid and refunded in full: nothing for the wallet
    state = payment_item(p.pi)
    assert state is not None and state["credited"] == 0 and state["paid"] is True


def test_a_partial_refund_delivered_first_leaves_the_rest(
    api: Api, webhook: Callable[..., Any], project_ledger: Callable[[], None]
) -> None:
    create(api)
    p = Pay(credits="2500", amount=2000, offer="pack_2500")
    handled(webhook, p.refunded(500))
    handled(webhook, p.completed())
    # 2500 × 500 / 2000 = 625 refunded: 1875 credited, in one grant (no grant-and-reverse)
    assert balance(api) == 50 + 1875
    entries = [(e["type"], e["credits"]) for e in ledger(api, project_ledger)]
    assert entries == [("grant", "50"), ("grant", "1875")]


def test_a_refund_delivered_first_still_lists_the_payment_once(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.refunded(500, after=100))
    handled(webhook, p.completed())
    lines = payments(api)
    assert [line["payment_id"] for line in lines] == [p.pi]
    assert lines[0]["checkout_session_id"] == p.session_id
    assert (lines[0]["status"], lines[0]["credited"]) == ("refunded", "0")


def test_a_refund_delivered_first_does_not_change_the_payments_date(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.refunded(500, after=100))
    handled(webhook, p.completed())
    (line,) = payments(api)
    assert line["created_at"] == clock.iso(p.created)


def test_payment_intent_succeeded_first_lists_the_payment_once(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.succeeded(after=1))
    handled(webhook, p.completed(after=0))
    (line,) = payments(api)
    assert (line["payment_id"], line["checkout_session_id"]) == (p.pi, p.session_id)
    assert (line["status"], line["credited"]) == ("paid", "500")


def test_payment_intent_succeeded_before_checkout_completed_credits_once(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.succeeded())
    assert balance(api) == 550
    handled(webhook, p.completed(invoice="in_unitFakeInvoice01"))
    assert balance(api) == 550
    state = payment_item(p.pi)
    assert state is not None
    # what only the session knows is merged in afterwards
    assert (state["session_id"], state["invoice_id"]) == (p.session_id, "in_unitFakeInvoice01")
    assert len(state["gids"]) == 1


def test_an_async_success_after_a_failure_credits_once(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed(paid=False))
    handled(webhook, p.async_failed(after=60))
    assert balance(api) == 50
    assert payments(api)[0]["status"] == "failed"
    # Stripe's word that the money arrived wins over an earlier failure
    handled(webhook, p.async_succeeded(after=30))
    handled(webhook, p.async_succeeded(after=30))
    assert balance(api) == 550
    assert payments(api)[0]["status"] == "paid"


def test_a_failure_delivered_after_the_success_takes_nothing_back(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed(paid=False))
    handled(webhook, p.async_succeeded(after=60))
    handled(webhook, p.async_failed(after=30))
    assert balance(api) == 550
    assert payments(api)[0]["status"] == "paid"


def test_a_dispute_closed_won_before_its_creation_takes_nothing(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    handled(webhook, p.disputed("closed", "won", after=300))
    handled(webhook, p.disputed("created", "needs_response", after=200))  # late
    assert balance(api) == 550
    assert payments(api)[0]["status"] == "paid"


def test_a_dispute_closed_lost_before_its_creation_stays_lost(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    handled(webhook, p.disputed("closed", "lost", after=300))
    handled(webhook, p.disputed("created", "needs_response", after=200))
    handled(webhook, p.disputed("funds_reinstated", "needs_response", after=250))
    assert balance(api) == 50


def test_dispute_events_before_the_payment_are_applied_when_it_is_paid(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.disputed("created", "needs_response"))
    assert balance(api) == 50
    handled(webhook, p.completed())
    assert balance(api) == 50  # paid, but the disputed amount is gone
    handled(webhook, p.disputed("closed", "won", after=300))
    assert balance(api) == 550


# -- refunds and disputes -------------------------------------------------------------------


def test_partial_refunds_then_a_full_refund(
    api: Api, webhook: Callable[..., Any], project_ledger: Callable[[], None]
) -> None:
    create(api)
    p = Pay(credits="2500", amount=2000, offer="pack_2500")  # $20
    handled(webhook, p.completed())
    assert balance(api) == 2550
    steps = [
        (500, "1875", "5"),  # 2500 × 500/2000 = 625 back
        (1500, "625", "15"),  # amount_refunded is cumulative: 1875 back in all
        (1500, "625", "15"),  # the same refund again
        (2000, "0", "20"),  # all of it
    ]
    for n, (refunded, credited, dollars) in enumerate(steps):
        handled(webhook, p.refunded(refunded, after=100 + n))
        assert balance(api) == 50 + Decimal(credited), refunded
        (line,) = payments(api)
        assert (line["status"], line["credited"]) == ("refunded", credited)
        assert line["refunded_amount"] == dollars
    reversals = [e["credits"] for e in ledger(api, project_ledger) if e["type"] == "reversal"]
    assert reversals == ["-625", "-1250", "-625"]


def test_a_smaller_refund_delivered_late_changes_nothing(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay(credits="2500", amount=2000, offer="pack_2500")
    handled(webhook, p.completed())
    handled(webhook, p.refunded(1500, after=200))
    handled(webhook, p.refunded(500, after=100))  # the earlier refund, delivered late
    assert balance(api) == 50 + 625


def test_the_refunded_share_is_rounded_half_even_to_six_decimals(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    # 10 credits for 20,000,000 cents: each cent refunded is worth 0.0000005 credits
    p = Pay(credits="10", amount=20_000_000, offer="fiat", currency="eur")
    handled(webhook, p.completed())
    cases = [
        (1, "10"),  # 0.0000005 → 0.000000 (half to even)
        (3, "9.999998"),  # 0.0000015 → 0.000002
        (5, "9.999998"),  # 0.0000025 → 0.000002 (half to even, not 0.000003)
        (7, "9.999996"),  # 0.0000035 → 0.000004
    ]
    for refunded, credited in cases:
        handled(webhook, p.refunded(refunded))
        assert balance(api) == 50 + Decimal(credited), refunded


@pytest.mark.parametrize(
    ("final", "credited"),
    [
        pytest.param("lost", "0", id="lost"),
        pytest.param("won", "500", id="won"),
        pytest.param("warning_closed", "500", id="warning_closed"),
    ],
)
def test_a_dispute_takes_the_credits_and_its_outcome_decides(
    api: Api, webhook: Callable[..., Any], final: str, credited: str
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    handled(webhook, p.disputed("created", "needs_response"))
    assert balance(api) == 50
    handled(webhook, p.disputed("updated", "under_review", after=250))
    assert balance(api) == 50
    handled(webhook, p.disputed("closed", final, after=300))
    assert balance(api) == 50 + Decimal(credited)


def test_a_refund_and_a_dispute_add_up_and_never_take_more_than_the_payment(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay(credits="2500", amount=2000, offer="pack_2500")
    handled(webhook, p.completed())
    handled(webhook, p.refunded(400))  # 500 credits back
    handled(webhook, p.disputed("created", "needs_response", amount=800))  # 1000 more
    assert balance(api) == 50 + 1000
    handled(webhook, p.disputed("created", "needs_response", amount=1600, dispute_id="dp_2nd"))
    assert balance(api) == 50  # 400 + 800 + 1600 > 2000: all of it, never more
    handled(webhook, p.disputed("closed", "won", amount=1600, dispute_id="dp_2nd", after=300))
    assert balance(api) == 50 + 1000


# -- spent credits taken back ---------------------------------------------------------------


def test_a_refund_of_spent_credits_drives_the_balance_negative_until_a_top_up_repays_it(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    first = Pay()
    handled(webhook, first.completed())
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "540"}), 201)
    assert money(api) == ("10", "0", "10")  # 50 monthly, then 490 of the purchase

    handled(webhook, first.refunded(500))
    assert money(api) == ("-490", "0", "-490")
    for path, body in [
        (f"{W}/reservations", {"feature": "chat", "credits": "1"}),
        (f"{W}/charges", {"feature": "chat", "credits": "1"}),
    ]:
        problem(api("POST", path, body), 402, "insufficient-credits")
    assert money(api) == ("-490", "0", "-490")

    second = Pay(created=first.created + 1000)
    handled(webhook, second.completed())
    assert money(api) == ("10", "0", "10")  # the deficit is repaid first
    ok(api("POST", f"{W}/reservations", {"feature": "chat", "credits": "1"}), 201)
    assert money(api) == ("10", "1", "9")


def test_a_dispute_lost_after_the_credits_were_spent_also_overdraws(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    ok(api("POST", f"{W}/charges", {"feature": "chat", "credits": "550"}), 201)
    handled(webhook, p.disputed("created", "needs_response"))
    assert money(api) == ("-500", "0", "-500")
    handled(webhook, p.disputed("closed", "won", after=300))
    assert money(api) == ("0", "0", "0")


# -- the invariant over a scripted story ----------------------------------------------------


def test_credited_total_is_paid_credits_less_the_refunded_share(
    api: Api, webhook: Callable[..., Any], project_ledger: Callable[[], None]
) -> None:
    create(api)
    t = se.now()
    a = Pay(credits="500", amount=500, created=t)
    b = Pay(credits="2500", amount=2000, offer="pack_2500", created=t + 10)
    c = Pay(credits="1234", amount=1234, offer="fiat", currency="eur", created=t + 20)
    d = Pay(credits="10000", amount=7000, offer="pack_10000", created=t + 30)
    e = Pay(credits="500", amount=500, created=t + 40)  # never paid
    script = [
        a.completed(),
        b.succeeded(),
        a.succeeded(),
        c.refunded(234),  # before c is paid
        b.completed(),
        c.completed(),
        d.completed(),
        a.completed(),  # again
        b.refunded(700),
        d.disputed("created", "needs_response", amount=3500),
        e.completed(paid=False),
        b.refunded(700),  # again
        d.disputed("closed", "lost", amount=3500, after=300),
        c.refunded(234),  # again
        e.async_failed(),
        b.refunded(1000, after=150),
    ]
    for evt in script:
        handled(webhook, evt)

    # what each payment should have in the wallet, from the facts alone
    expected = {
        a.pi: Decimal(500),
        b.pi: Decimal(2500) - Decimal(2500) * 1000 / 2000,  # 1250
        c.pi: Decimal(1234) - Decimal(1234) * 234 / 1234,  # 1000
        d.pi: Decimal(10000) - Decimal(10000) * 3500 / 7000,  # 5000
        e.pi: Decimal(0),
    }
    lines = {line["payment_id"]: line for line in payments(api)}
    assert {pi: Decimal(line["credited"]) for pi, line in lines.items()} == expected
    assert {pi: line["status"] for pi, line in lines.items()} == {
        a.pi: "paid",
        b.pi: "refunded",
        c.pi: "refunded",
        d.pi: "disputed",
        e.pi: "failed",
    }
    assert balance(api) == 50 + sum(expected.values())

    # and the ledger says the same: purchases granted less reversals, each entry the running sum
    entries = ledger(api, project_ledger)
    running = Decimal(0)
    for entry in entries:
        running += Decimal(entry["credits"])
        assert Decimal(entry["balance_after"]) == running, entry
    bought = sum(
        Decimal(e["credits"])
        for e in entries
        if e["type"] in ("grant", "reversal") and e["source"] == "purchase"
    )
    assert bought == sum(expected.values())
    assert running == balance(api)


# -- unknown wallets and events we do not use -----------------------------------------------


def test_a_payment_for_an_unknown_wallet_is_recorded_never_credited(
    api: Api,
    webhook: Callable[..., Any],
    table_items: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    p = Pay(wallet_id="ghost")
    capsys.readouterr()
    body = handled(webhook, p.completed())
    assert body["payment_id"] == p.pi
    assert "PaymentsForUnknownWallets" in emitted_metrics(capsys.readouterr().out)
    state = payment_item(p.pi)
    assert state is not None
    assert (state["wallet_id"], state["unknown_wallet"], state["credited"]) == ("ghost", True, 0)
    assert [i["pk"]["S"] for i in table_items()] == [f"PAY#{p.pi}"]  # no wallet, no line

    # a wallet created later under that id is someone else's: still never credited
    create(api, "ghost")
    handled(webhook, p.succeeded())
    handled(webhook, p.completed(after=5))
    assert balance(api, "ghost") == 50
    assert payments(api, "ghost") == []
    problem(api("GET", f"/v1/wallets/ghost/payments/{p.pi}/invoice"), 404, "payment-not-found")


@pytest.mark.parametrize(
    "evt",
    [
        pytest.param(
            se.event("customer.created", {"id": "cus_x", "object": "customer"}),
            id="customer.created",
        ),
        pytest.param(
            se.event("checkout.session.expired", Pay().session("unpaid")), id="session-expired"
        ),
        pytest.param(se.event("invoice.paid", se.invoice()), id="invoice.paid"),
        pytest.param(
            se.event("payment_intent.created", Pay().intent("requires_payment_method")),
            id="payment_intent.created",
        ),
        pytest.param(
            # a PaymentIntent this service did not start (no wallet in its metadata)
            se.event("payment_intent.succeeded", se.payment_intent(metadata={"order": "42"})),
            id="foreign-payment-intent",
        ),
        pytest.param(
            # a checkout's failed attempt: the customer may try another card
            se.event("payment_intent.payment_failed", Pay().intent("requires_payment_method")),
            id="checkout-payment-failed",
        ),
        pytest.param(
            se.event("checkout.session.completed", se.checkout_session(mode="setup")),
            id="setup-session",
        ),
    ],
)
def test_an_event_we_do_not_use_is_acknowledged_and_writes_nothing(
    api: Api, webhook: Callable[..., Any], table_items: Any, evt: Json
) -> None:
    create(api)
    before = table_items()
    status, headers, body = webhook(evt)
    assert status == 200 and headers["content-type"] == "application/json"
    assert {k: v for k, v in body.items() if v is not None} == {
        "received": True,
        "handled": False,
    }
    assert table_items() == before


# -- forged and broken deliveries -----------------------------------------------------------

SECRET = "whsec_unit_fake_signing_secret"  # the function's, from the conftest


def _good() -> tuple[bytes, int]:
    return se.encode(Pay().completed()), se.now()


def forged(name: str, make: Callable[[], dict[str, Any]]) -> Any:
    return pytest.param(make, id=name)


def _tampered() -> dict[str, Any]:
    payload, t = _good()
    signature = se.sign(payload, SECRET, t)
    return {"evt": payload.replace(b'"500"', b'"50000"'), "signature": signature}


def _v0_only() -> dict[str, Any]:
    payload, t = _good()
    v1 = se.sign(payload, SECRET, t).split(",")[1].removeprefix("v1=")
    return {"evt": payload, "signature": f"t={t},v0={v1}"}


def _no_timestamp() -> dict[str, Any]:
    payload, t = _good()
    return {"evt": payload, "signature": se.sign(payload, SECRET, t).split(",")[1]}


FORGED = [
    forged("no-signature-header", lambda: {"evt": _good()[0], "signature": ""}),
    forged(
        "wrong-secret", lambda: {"evt": _good()[0], "secret": "whsec_someone_elses_fake_secret"}
    ),
    forged("tampered-body", _tampered),
    forged("timestamp-301s-old", lambda: {"evt": _good()[0], "timestamp": se.now() - 301}),
    forged("timestamp-a-day-old", lambda: {"evt": _good()[0], "timestamp": se.now() - 86400}),
    forged("v1-missing", _v0_only),
    forged("t-missing", _no_timestamp),
    forged("garbage-header", lambda: {"evt": _good()[0], "signature": "not a signature"}),
    forged("empty-v1", lambda: {"evt": _good()[0], "signature": f"t={se.now()},v1="}),
    forged("body-not-json", lambda: {"evt": b"this is not json"}),
    forged("body-empty", lambda: {"evt": b""}),
    forged(
        # signed with the right secret, but larger than any event Stripe sends (256 KB)
        "body-too-large",
        lambda: {"evt": se.encode({**Pay().completed(), "padding": "x" * (300 * 1024)})},
    ),
]


@pytest.mark.parametrize("make", FORGED)
def test_a_forged_or_broken_delivery_is_400_and_writes_nothing(
    api: Api,
    webhook: Callable[..., Any],
    table_items: Any,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[], dict[str, Any]],
) -> None:
    create(api)
    before = table_items()
    kwargs = make()
    evt = kwargs.pop("evt")
    status, headers, body = webhook(evt, **kwargs)
    assert status == 400, body
    assert headers["content-type"] == PROBLEM_JSON
    assert body["status"] == 400 and body["title"] and body["detail"], body
    assert body["type"].startswith("/problems/"), body
    assert table_items() == before
    assert balance(api) == 50
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert SECRET not in json.dumps(body)


@pytest.mark.parametrize("payload", [b"[1, 2, 3]", b'"an event"', b"42", b"null"])
def test_a_signed_body_that_is_not_a_json_object_is_400_and_writes_nothing(
    api: Api, webhook: Callable[..., Any], table_items: Any, payload: bytes
) -> None:
    create(api)
    before = table_items()
    status, headers, body = webhook(payload)  # signed with the right secret
    assert (status, headers["content-type"]) == (400, PROBLEM_JSON), body
    assert table_items() == before


@pytest.mark.parametrize("how", ["signed-290s-ago", "base64-encoded-body"])
def test_a_good_delivery_within_the_rules_is_accepted(
    api: Api, webhook: Callable[..., Any], how: str
) -> None:
    create(api)
    if how == "signed-290s-ago":
        kwargs: dict[str, Any] = {"timestamp": se.now() - 290}
    else:
        kwargs = {"base64": True}  # API Gateway's isBase64Encoded
    status, _, body = webhook(Pay().completed(), **kwargs)
    assert (status, body["handled"]) == (200, True), body
    assert balance(api) == 550


def test_a_signature_header_with_a_rotated_secret_is_accepted(
    api: Api, webhook: Callable[..., Any]
) -> None:
    # During a secret roll Stripe signs with both secrets: one good v1 is enough
    create(api)
    payload = se.encode(Pay().completed())
    t = se.now()
    good = se.sign(payload, SECRET, t).split(",")[1]
    other = se.sign(payload, "whsec_the_old_fake_secret", t).split(",")[1]
    status, _, body = webhook(payload, signature=f"t={t},{other},{good}")
    assert status == 200, body
    assert balance(api) == 550


# -- the payments list ----------------------------------------------------------------------


def test_payments_list_shows_each_status(api: Api, webhook: Callable[..., Any]) -> None:
    create(api)
    t = se.now() - 1000
    stories = {
        "pending": (Pay(created=t), lambda p: [p.completed(paid=False)]),
        "paid": (Pay(created=t + 1), lambda p: [p.completed()]),
        "failed": (Pay(created=t + 2), lambda p: [p.completed(paid=False), p.async_failed()]),
        "refunded": (Pay(created=t + 3), lambda p: [p.completed(), p.refunded(100)]),
        "disputed": (
            Pay(created=t + 4),
            lambda p: [p.completed(), p.disputed("created", "needs_response")],
        ),
    }
    for p, events in stories.values():
        deliver_all(webhook, *events(p))
    lines = payments(api)
    # newest first
    assert [line["status"] for line in lines] == [
        "disputed",
        "refunded",
        "failed",
        "paid",
        "pending",
    ]
    assert [line["payment_id"] for line in lines] == [p.pi for p, _ in reversed(stories.values())]
    assert [line["credited"] for line in lines] == ["0", "400", "0", "500", "0"]


def test_payments_list_fields_of_a_paid_checkout(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any
) -> None:
    create(api)
    session, pi = buy(api, webhook, stripe_requests, {"pack": "pack_2500"})
    (line,) = payments(api)
    assert line == {
        "payment_id": pi["id"],
        "created_at": line["created_at"],
        "status": "paid",
        "kind": "checkout",
        "offer": "pack_2500",
        "amount": "20",
        "currency": "usd",
        "refunded_amount": "0",
        "credits": "2500",
        "credited": "2500",
        "checkout_session_id": session["id"],
        "invoice_id": session["invoice"],
        "invoice_url": f"/v1/wallets/w1/payments/{pi['id']}/invoice",
        "receipt_url": line["receipt_url"],
    }
    # the session and the PaymentIntent carry no receipt; a charge event would
    receipt = stripe_requests.charge(pi["latest_charge"])["receipt_url"]
    assert line["receipt_url"] in (None, receipt)
    assert datetime.fromisoformat(line["created_at"].replace("Z", "+00:00")).tzinfo is not None


def test_payments_list_pages_newest_first_with_a_cursor(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    create(api, "w2")
    t = se.now() - 1000
    made = [Pay(created=t + 10 * n) for n in range(5)]
    for p in made:
        handled(webhook, p.completed())
    theirs = Pay(wallet_id="w2", created=t + 100)  # not w1's
    handled(webhook, theirs.completed())

    newest_first = [p.pi for p in reversed(made)]
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = ok(api("GET", f"{W}/payments", query=query), 200)
        sizes.append(len(page["items"]))
        seen.extend(line["payment_id"] for line in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    assert sizes == [2, 2, 1]
    assert ok(api("GET", f"{W}/payments"), 200)["next_cursor"] is None
    assert [line["payment_id"] for line in payments(api, "w2")] == [theirs.pi]


def test_payments_list_of_a_wallet_without_payments_is_empty(api: Api) -> None:
    create(api)
    assert ok(api("GET", f"{W}/payments"), 200) == {"items": [], "next_cursor": None}


def test_payments_list_of_an_unknown_wallet_is_404(api: Api) -> None:
    problem(api("GET", "/v1/wallets/nobody/payments"), 404, "wallet-not-found")


# -- the ledger and the grants list ---------------------------------------------------------


def test_the_ledger_shows_the_purchase_and_its_reversal(
    api: Api, webhook: Callable[..., Any], project_ledger: Callable[[], None]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    handled(webhook, p.refunded(200))
    entries = ledger(api, project_ledger)
    assert [(e["type"], e["credits"], e["balance_after"], e["source"]) for e in entries] == [
        ("grant", "50", "50", "monthly"),
        ("grant", "500", "550", "purchase"),
        ("reversal", "-200", "350", "purchase"),
    ]
    grant, reversal = entries[1], entries[2]
    assert p.pi in (grant["reason"] or "") and p.pi in (reversal["reason"] or "")
    assert "refund" in (reversal["reason"] or "")
    assert grant["status"] == reversal["status"] == "posted"

    lines = pages(api, f"{W}/grants")
    purchases = [g for g in lines if g["source"] == "purchase"]
    assert [(g["grant_id"], g["credits"], g["status"]) for g in purchases] == [
        (grant["transaction_id"], "500", "active")
    ]
    assert purchases[0]["remaining"] == "300"


def test_the_ledger_names_a_dispute_as_such(
    api: Api, webhook: Callable[..., Any], project_ledger: Callable[[], None]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed())
    handled(webhook, p.disputed("created", "needs_response"))
    handled(webhook, p.disputed("closed", "won", after=300))
    entries = ledger(api, project_ledger)
    assert [(e["type"], e["credits"]) for e in entries] == [
        ("grant", "50"),
        ("grant", "500"),
        ("reversal", "-500"),
        ("grant", "500"),
    ]
    assert "dispute" in (entries[2]["reason"] or "")
    assert entries[-1]["balance_after"] == "550"


# -- business plans: purchases last one period ----------------------------------------------


@pytest.fixture
def fixed_clock() -> Iterator[Callable[[datetime], None]]:
    moment = [datetime(2026, 1, 31, 15, 0, tzinfo=UTC)]
    clock.set_clock(lambda: moment[0].timestamp())

    def set_to(when: datetime) -> None:
        moment[0] = when

    yield set_to
    clock.set_clock(None)


def test_a_business_purchase_expires_at_the_period_end(
    api: Api, webhook: Callable[..., Any], fixed_clock: Callable[[datetime], None]
) -> None:
    create(api, "biz", "business")
    create(api, "w1")
    end = datetime(2026, 2, 28, tzinfo=UTC)
    handled(webhook, Pay(wallet_id="biz").completed())
    handled(webhook, Pay(wallet_id="w1").completed())
    purchase = [b for b in wallet(api, "biz")["buckets"] if b["source"] == "purchase"]
    assert purchase == [
        {
            "source": "purchase",
            "remaining": "500",
            "expires_at": "2026-02-28T00:00:00.000Z",
            "priority": 20,
        }
    ]
    assert [b["expires_at"] for b in wallet(api, "w1")["buckets"] if b["source"] == "purchase"] == [
        None
    ]
    fixed_clock(end)
    advanced = Periods().advance("biz")
    assert advanced.reset
    assert money(api, "biz") == ("2000", "0", "2000")  # the purchase is gone, a new allowance
    assert Periods().advance("w1").reset
    assert money(api, "w1") == ("550", "0", "550")  # elsewhere purchases stay


# -- checkout through the fake Stripe -------------------------------------------------------


def buy(
    api: Api,
    webhook: Callable[..., Any],
    fake: Any,
    body: Json,
    wallet_id: str = "w1",
    payment_method: str = "pm_card_visa",
) -> tuple[Json, Json]:
    """Check out through the API, pay in the fake Stripe, deliver what Stripe would send."""
    out = ok(api("POST", f"/v1/wallets/{wallet_id}/checkout", {**body, **URLS}), 201)
    session = fake.complete_checkout(out["checkout_session_id"], payment_method=payment_method)
    pi = fake.payment_intent(session["payment_intent"])
    handled(webhook, se.event("checkout.session.completed", session))
    handled(webhook, se.event("payment_intent.succeeded", pi))
    return session, pi


def sessions_created(fake: Any) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]


def test_checkout_of_a_pack_creates_a_stripe_checkout_session(
    api: Api, stripe_requests: Any
) -> None:
    create(api)
    body = ok(api("POST", f"{W}/checkout", {"pack": "pack_500", **URLS}), 201)
    (request,) = sessions_created(stripe_requests)
    session = stripe_requests.checkout_session(body["checkout_session_id"])
    assert body == {
        "checkout_session_id": session["id"],
        "url": session["url"],
        "expires_at": clock.iso(session["expires_at"]),
        "offer": "pack_500",
        "credits": "500",
        "amount": "5",
        "currency": "usd",
    }
    params = request.params
    meta = {
        "deployment": "local",
        "wallet_id": "w1",
        "credits": "500",
        "offer": "pack_500",
        "kind": "checkout",
    }
    assert params["mode"] == "payment"
    assert params["metadata"] == meta
    assert params["payment_intent_data"]["metadata"] == meta
    assert "setup_future_usage" not in params["payment_intent_data"]
    assert params["invoice_creation"]["enabled"] == "true"
    assert params["client_reference_id"] == "w1"
    assert (params["success_url"], params["cancel_url"]) == (
        URLS["success_url"],
        URLS["cancel_url"],
    )
    (line,) = params["line_items"]
    assert line["quantity"] == "1"
    assert line["price_data"]["unit_amount"] == "500"
    assert line["price_data"]["currency"] == "usd"
    assert request.headers["authorization"] == "Bearer sk_test_unit_fake_key_DO_NOT_LEAK_42"
    assert session["amount_total"] == 500 and session["status"] == "open"


def test_checkout_can_save_the_card_for_auto_top_ups(api: Api, stripe_requests: Any) -> None:
    create(api)
    body = {"pack": "pack_500", "save_payment_method": True, **URLS}
    ok(api("POST", f"{W}/checkout", body), 201)
    (request,) = sessions_created(stripe_requests)
    assert request.params["payment_intent_data"]["setup_future_usage"] == "off_session"


def test_a_later_checkout_reuses_the_saved_customer(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any
) -> None:
    create(api)
    _, pi = buy(api, webhook, stripe_requests, {"pack": "pack_500", "save_payment_method": True})
    stripe_requests.requests.clear()
    ok(api("POST", f"{W}/checkout", {"pack": "pack_2500", **URLS}), 201)
    (request,) = sessions_created(stripe_requests)
    assert request.params["customer"] == pi["customer"]
    assert "customer_creation" not in request.params


@pytest.mark.parametrize(
    ("amount", "currency", "credits", "cents", "shown"),
    [
        pytest.param("1", "eur", "100", "100", "1", id="the-minimum"),
        pytest.param("12.34", "EUR", "1234", "1234", "12.34", id="cents-upper-case-currency"),
        pytest.param(12.5, "eur", "1250", "1250", "12.5", id="a-json-number"),
        pytest.param("1000", "eur", "100000", "100000", "1000", id="a-preset"),
        pytest.param("10000", "eur", "1000000", "1000000", "10000", id="the-maximum"),
    ],
)
def test_a_fiat_top_up_converts_at_credits_per_unit(
    api: Api,
    stripe_requests: Any,
    amount: Any,
    currency: str,
    credits: str,
    cents: str,
    shown: str,
) -> None:
    create(api)
    body = ok(api("POST", f"{W}/checkout", {"amount": amount, "currency": currency, **URLS}), 201)
    assert (body["offer"], body["credits"], body["amount"], body["currency"]) == (
        "fiat",
        credits,
        shown,
        "eur",
    )
    (request,) = sessions_created(stripe_requests)
    price = request.params["line_items"][0]["price_data"]
    assert (price["unit_amount"], price["currency"]) == (cents, "eur")
    assert request.params["metadata"]["credits"] == credits
    assert request.params["metadata"]["offer"] == "fiat"


def test_offers_list_the_packs_and_the_fiat_terms(api: Api) -> None:
    body = ok(api("GET", "/v1/topups/offers"), 200)
    assert [(p["pack"], p["credits"], p["price"], p["currency"]) for p in body["packs"]] == [
        ("pack_500", "500", "5", "usd"),
        ("pack_2500", "2500", "20", "usd"),
        ("pack_10000", "10000", "70", "usd"),
    ]
    fiat = body["amounts"]
    assert (fiat["currency"], fiat["minimum"], fiat["credits_per_unit"]) == ("eur", "1", "100")
    assert fiat["presets"] == ["10", "50", "100", "300", "500", "1000"]


def test_the_idempotency_key_is_forwarded_and_a_retry_gets_the_same_session(
    api: Api, stripe_requests: Any
) -> None:
    create(api)
    create(api, "w2")
    body = {"pack": "pack_500", **URLS}
    key = {"Idempotency-Key": "buy-once-123"}
    first = ok(api("POST", f"{W}/checkout", body, key), 201)
    again = ok(api("POST", f"{W}/checkout", body, key), 201)
    assert again == first
    # the same client key for another wallet is another checkout
    other = ok(api("POST", "/v1/wallets/w2/checkout", body, key), 201)
    assert other["checkout_session_id"] != first["checkout_session_id"]
    # without a key, each request is a new checkout
    one = ok(api("POST", f"{W}/checkout", body), 201)
    two = ok(api("POST", f"{W}/checkout", body), 201)
    assert one["checkout_session_id"] != two["checkout_session_id"]

    keys = [r.idempotency_key for r in sessions_created(stripe_requests)]
    assert keys[0] == keys[1] and keys[0] is not None and "buy-once-123" in keys[0]
    assert keys[2] is not None and keys[2] != keys[0] and "buy-once-123" in keys[2]
    assert len(set(keys)) == 4  # the two keyless requests got keys of their own


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(
    api: Api, stripe_requests: Any
) -> None:
    create(api)
    key = {"Idempotency-Key": "buy-once-456"}
    ok(api("POST", f"{W}/checkout", {"pack": "pack_500", **URLS}, key), 201)
    problem(
        api("POST", f"{W}/checkout", {"pack": "pack_2500", **URLS}, key),
        409,
        "idempotency-key-reused",
    )


@pytest.fixture
def gateway_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Set one of the gateway's variables for this test; the cached client is dropped then
    and again afterwards."""
    from credit_meter.payments import stripe_gateway

    def setenv(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        stripe_gateway.reset_client()

    yield setenv
    monkeypatch.undo()
    stripe_gateway.reset_client()


@pytest.fixture
def logs(metering_app: Any, caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """Everything logged while the test runs: the function's JSON log lines (its handler's
    stream) and any library's records (``caplog``, at DEBUG)."""
    handler = metering_app.logger.registered_handler
    stream = StringIO()
    old = handler.setStream(stream)
    caplog.set_level(logging.DEBUG)
    try:
        yield lambda: stream.getvalue() + caplog.text
    finally:
        handler.setStream(old)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


API_KEY = "sk_test_unit_fake_key_DO_NOT_LEAK_42"  # the conftest's fake key


def test_stripe_unreachable_is_502_without_the_key(
    api: Api,
    stripe_env: dict[str, str],  # the key is set, or there would be no key to leak
    gateway_env: Callable[[str, str], None],
    logs: Callable[[], str],
    capsys: pytest.CaptureFixture[str],
    table_items: Any,
) -> None:
    create(api)
    before = table_items()
    gateway_env("STRIPE_API_BASE", f"http://127.0.0.1:{_closed_port()}")
    response = api("POST", f"{W}/checkout", {"pack": "pack_500", **URLS})
    body = problem(response, 502, "payment-provider-error")
    out = capsys.readouterr()
    for text in (json.dumps(body), logs(), out.out, out.err):
        assert API_KEY not in text
    assert table_items() == before


def test_stripe_refusing_the_key_is_502_without_the_key(
    api: Api,
    fake_stripe: Any,
    gateway_env: Callable[[str, str], None],
    logs: Callable[[], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    create(api)
    live_looking = "sk_live_unit_fake_NOT_A_REAL_KEY_0000"  # the fake refuses non-test keys
    gateway_env("STRIPE_API_BASE", fake_stripe.base_url)
    gateway_env("STRIPE_API_KEY", live_looking)
    body = problem(
        api("POST", f"{W}/checkout", {"pack": "pack_500", **URLS}), 502, "payment-provider-error"
    )
    out = capsys.readouterr()
    for text in (json.dumps(body), logs(), out.out, out.err):
        assert live_looking not in text
        assert live_looking[8:-4] not in text  # nor the middle Stripe would echo masked


# -- invoices -------------------------------------------------------------------------------


def test_the_invoice_link_redirects_to_the_invoice_pdf(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any
) -> None:
    create(api)
    session, pi = buy(api, webhook, stripe_requests, {"pack": "pack_500"})
    invoice = stripe_requests.invoice(session["invoice"])
    status, headers, body = api("GET", f"{W}/payments/{pi['id']}/invoice")
    assert status == 302, body
    assert headers["location"] == invoice["invoice_pdf"]
    (line,) = payments(api)
    assert line["invoice_url"] == f"{W}/payments/{pi['id']}/invoice"


def test_without_an_invoice_the_link_redirects_to_the_receipt(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.succeeded())
    handled(webhook, p.charge_succeeded())
    receipt = p.charge()["receipt_url"]
    status, headers, _ = api("GET", f"{W}/payments/{p.pi}/invoice")
    assert (status, headers["location"]) == (302, receipt)


def test_a_payment_without_invoice_or_receipt_has_no_link(
    api: Api, webhook: Callable[..., Any]
) -> None:
    create(api)
    p = Pay()
    handled(webhook, p.completed(paid=False))
    assert payments(api)[0]["invoice_url"] is None
    problem(api("GET", f"{W}/payments/{p.pi}/invoice"), 404, "payment-not-found")


def test_the_invoice_of_another_wallets_or_an_unknown_payment_is_404(
    api: Api, webhook: Callable[..., Any], stripe_requests: Any
) -> None:
    create(api)
    create(api, "w2")
    _, theirs = buy(api, webhook, stripe_requests, {"pack": "pack_500"}, wallet_id="w2")
    problem(api("GET", f"{W}/payments/{theirs['id']}/invoice"), 404, "payment-not-found")
    problem(api("GET", f"{W}/payments/pi_unitFakeNoSuchPayment0/invoice"), 404, "payment-not-found")
    # the owner gets it
    assert api("GET", f"/v1/wallets/w2/payments/{theirs['id']}/invoice")[0] == 302
