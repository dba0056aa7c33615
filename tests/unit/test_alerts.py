"""Credit alerts (issue "alerts"): which wallet writes fire which alerts
(:func:`credit_meter.core.alerts.crossings`), the wallet's alert state, and the published examples
in ``events/eventbridge-*.json`` checked against what the code produces (docs/events.md).

Wallet images are given deserialized, as the stream handler sees them; the base wallet is the
``acme`` wallet of ``events/alerts-stream.json`` (starter plan, allowance 500)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_meter.core import alerts
from credit_meter.core.alerts import Alert, Threshold, WalletFacts
from credit_meter.storage import wallet_record
from credit_meter.storage.store import from_item
from credit_meter.storage.wallet_record import alert_facts

EVENTS = Path(__file__).parents[2] / "events"
Json = dict[str, Any]


def _sample_record() -> Json:
    record: Json = json.loads((EVENTS / "alerts-stream.json").read_text())["Records"][0]
    return record


BASE = from_item(_sample_record()["dynamodb"]["OldImage"])  # used 360 of 500, balance 140


def wallet(**changes: Any) -> Json:
    """The base wallet with ``changes``; numbers become Decimals, ``None`` removes."""
    image = dict(BASE)
    for name, value in changes.items():
        if value is None:
            image.pop(name, None)
        elif isinstance(value, int | str) and name not in ("wallet_id", "plan"):
            image[name] = Decimal(value)
        else:
            image[name] = value
    return image


def spent(used: int, **changes: Any) -> Json:
    """The base wallet after spending ``used`` of its 500 (balance and available follow,
    unless given)."""
    return wallet(**{"used": used, "bal": 500 - used, "avail": 500 - used, **changes})


def fired(old: Json | None, new: Json, record: str = "1") -> list[tuple[str, str]]:
    return [(a.detail_type, a.key) for a in crossings(old, new, record, occurred_at=0)]


# The rules read facts; these helpers give them stored images, as the alerts function does.


def crossings(
    old: Json | None, new: Json, record: str, occurred_at: float | None = None
) -> list[Alert]:
    before = None if old is None else alert_facts(old)
    return alerts.crossings(before, alert_facts(new), record, occurred_at=occurred_at)


def is_crossed(image: Json, t: Threshold) -> bool:
    return alerts.is_crossed(alert_facts(image), t)


def wallet_state(image: Json) -> alerts.WalletState:
    return alerts.wallet_state(alert_facts(image))


def thresholds_of(image: Json) -> tuple[Threshold, ...]:
    """The thresholds of a stored image that may hold nothing but ``alr``."""
    return alerts.thresholds_of(WalletFacts("w", thresholds=wallet_record.alert_thresholds(image)))


CROSSED = "credits.threshold_crossed"


# -- thresholds ------------------------------------------------------------------------------


def test_the_defaults_are_consumed_75_90_and_100_percent() -> None:
    assert thresholds_of(BASE) == alerts.DEFAULT_THRESHOLDS
    assert [(t.type, t.value) for t in alerts.DEFAULT_THRESHOLDS] == [
        ("consumed_percent", 75),
        ("consumed_percent", 90),
        ("consumed_percent", 100),
    ]
    assert alerts.MAX_THRESHOLDS == 10


def test_thresholds_round_trip_through_the_stored_form() -> None:
    ts = (
        Threshold("consumed_percent", Decimal("50.5")),
        Threshold("remaining_percent", Decimal(10)),
        Threshold("remaining_credits", Decimal(25)),
    )
    stored = wallet_record.threshold_items(ts)
    assert stored == [
        {"t": "c", "v": Decimal("50.5")},
        {"t": "r", "v": Decimal(10)},
        {"t": "a", "v": Decimal(25)},
    ]
    assert thresholds_of({"alr": stored}) == ts
    assert thresholds_of({"alr": []}) == ()  # alerts off


def test_a_charge_past_75_percent_fires_it() -> None:
    assert fired(spent(360), spent(380)) == [(CROSSED, "consumed_percent:75")]


def test_one_charge_over_several_thresholds_fires_each() -> None:
    assert fired(spent(360), spent(460)) == [
        (CROSSED, "consumed_percent:75"),
        (CROSSED, "consumed_percent:90"),
    ]
    assert fired(spent(0), spent(500)) == [
        (CROSSED, "consumed_percent:75"),
        (CROSSED, "consumed_percent:90"),
        (CROSSED, "consumed_percent:100"),
        ("credits.depleted", "depleted"),
    ]


def test_exactly_at_a_threshold_counts_as_crossed() -> None:
    assert fired(spent(374), spent(375)) == [(CROSSED, "consumed_percent:75")]
    assert fired(spent(375), spent(376)) == []


def test_no_second_fire_while_still_past() -> None:
    assert fired(spent(380), spent(400)) == []
    # A hold only moves available: nothing (remaining thresholds read the balance).
    held = spent(400, held=50, avail=50)
    assert fired(spent(400), held) == []


def test_a_reset_re_arms_the_consumed_thresholds() -> None:
    before = spent(400)
    reset = wallet(used=0, bal=500, avail=500, ps=1797811200, pe=1800489600)
    assert fired(before, reset) == []
    assert fired(reset, wallet(used=380, bal=120, avail=120, ps=1797811200, pe=1800489600)) == [
        (CROSSED, "consumed_percent:75")
    ]


def test_remaining_percent_fires_on_the_balance_and_re_arms_on_a_top_up() -> None:
    config = {"alr": wallet_record.threshold_items([Threshold("remaining_percent", Decimal(20))])}
    assert fired(spent(390, **config), spent(400, **config)) == [(CROSSED, "remaining_percent:20")]
    assert fired(spent(400, **config), spent(450, **config)) == []
    topped = wallet(used=450, bal=550, avail=550, **config)
    assert fired(spent(450, **config), topped) == []
    low_again = wallet(used=920, bal=80, avail=80, **config)
    assert fired(topped, low_again) == [(CROSSED, "remaining_percent:20")]


def test_remaining_credits_fires_at_or_below_the_value() -> None:
    config = {"alr": wallet_record.threshold_items([Threshold("remaining_credits", Decimal(100))])}
    assert fired(spent(399, **config), spent(400, **config)) == [(CROSSED, "remaining_credits:100")]
    assert fired(spent(400, **config), spent(401, **config)) == []


def test_percentages_never_fire_without_an_allowance() -> None:
    config = {
        "alr": wallet_record.threshold_items(
            [
                Threshold("consumed_percent", Decimal(1)),
                Threshold("remaining_percent", Decimal(99)),
                Threshold("remaining_credits", Decimal(10)),
            ]
        )
    }
    old = wallet(allow=0, used=0, bal=100, avail=100, **config)
    new = wallet(allow=0, used=95, bal=5, avail=5, **config)
    assert fired(old, new) == [(CROSSED, "remaining_credits:10")]
    for t in thresholds_of(new)[:2]:
        assert not is_crossed(new, t)


def test_alerts_off_fires_no_threshold_but_still_depletion() -> None:
    off = {"alr": []}
    assert fired(spent(0, **off), spent(490, **off)) == []
    assert fired(spent(490, **off), spent(500, **off)) == [("credits.depleted", "depleted")]


def test_a_threshold_added_while_already_past_fires_with_the_new_configuration() -> None:
    old = spent(
        400, alr=wallet_record.threshold_items([Threshold("consumed_percent", Decimal(90))])
    )
    new = spent(
        400, alr=wallet_record.threshold_items([Threshold("consumed_percent", Decimal(50))])
    )
    assert fired(old, new) == [(CROSSED, "consumed_percent:50")]
    # Removing a crossed threshold fires nothing.
    assert fired(new, spent(400, alr=[])) == []


def test_an_insert_counts_as_nothing_crossed_before() -> None:
    assert fired(None, spent(0)) == []
    assert fired(None, spent(400)) == [(CROSSED, "consumed_percent:75")]
    assert fired(None, wallet(allow=0, used=0, bal=0, avail=0)) == [
        ("credits.depleted", "depleted")
    ]


# -- spending alert, limits, budgets ----------------------------------------------------------


def test_the_spending_alert_fires_once_when_used_reaches_it() -> None:
    assert fired(spent(90, lat=100, alr=[]), spent(100, lat=100, alr=[])) == [
        (CROSSED, "spend:100")
    ]
    assert fired(spent(100, lat=100, alr=[]), spent(150, lat=100, alr=[])) == []
    (alert,) = crossings(spent(90, lat=100, alr=[]), spent(110, lat=100, alr=[]), "7")
    assert alert.detail["threshold"] == {"type": "spend", "value": "100"}
    # Raised above what was spent, it re-arms, and fires at the new value.
    assert fired(spent(150, lat=100, alr=[]), spent(150, lat=200, alr=[])) == []
    assert fired(spent(150, lat=200, alr=[]), spent(210, lat=200, alr=[])) == [
        (CROSSED, "spend:200")
    ]


def test_the_wallet_limit_fires_limit_reached() -> None:
    old, new = spent(390, lim=400, alr=[]), spent(400, lim=400, alr=[])
    (alert,) = crossings(old, new, "9", occurred_at=0)
    assert (alert.detail_type, alert.key) == ("limit.reached", "limit:wallet")
    assert (alert.detail["scope"], alert.detail["limit"]) == ("wallet", "400")
    assert wallet_state(new) == "capped"
    assert fired(new, spent(420, lim=400, alr=[])) == []


def test_a_member_budget_fires_limit_reached_for_that_member() -> None:
    def budgets(ana: int, bo: int) -> Json:
        return {
            "0123456789ab": {"n": "ana", "c": Decimal(50), "r": Decimal(50 - ana), "u": ana},
            "ba9876543210": {"n": "bo", "u": Decimal(bo)},  # no cap: never reached
        }

    old, new = spent(100, mb=budgets(45, 55), alr=[]), spent(105, mb=budgets(50, 55), alr=[])
    (alert,) = crossings(old, new, "11", occurred_at=0)
    assert (alert.detail_type, alert.key) == ("limit.reached", "limit:member:0123456789ab")
    assert alert.detail["scope"] == "member"
    assert alert.detail["member_id"] == "ana"
    assert alert.detail["member_budget"] == {"cap": "50", "used": "50"}
    assert "limit" not in alert.detail  # no wallet limit
    assert fired(new, spent(110, mb=budgets(55, 60), alr=[])) == []


def test_the_mark_of_a_refused_debit_fires_limit_reached_once_per_period() -> None:
    # Spending stopped short of the limit (the next debit would have passed it): the
    # refusal's mark (lhit = the period's start) is the write that reports it.
    base = spent(390, lim=400, alr=[])
    period = base["ps"]
    marked = {**base, "lhit": period}
    assert fired(base, marked) == [("limit.reached", "limit:wallet")]
    assert fired(marked, spent(395, lim=400, alr=[], lhit=period)) == []  # still reached
    assert wallet_state(marked) == "ok"  # 10 left: not capped, the mark only alerts
    # A mark from an earlier period means nothing now; a changed limit removes it.
    assert fired(base, {**base, "lhit": period - 1}) == []
    budgets = {"0123456789ab": {"n": "ana", "c": Decimal(50), "r": Decimal(5), "u": 45}}
    marked_budget = {
        "0123456789ab": {**budgets["0123456789ab"], "h": period},
    }
    assert fired(spent(100, mb=budgets, alr=[]), spent(100, mb=marked_budget, alr=[])) == [
        ("limit.reached", "limit:member:0123456789ab")
    ]


def test_depleted_and_restored_alternate() -> None:
    assert fired(spent(490, alr=[]), spent(500, alr=[])) == [("credits.depleted", "depleted")]
    overdrawn = wallet(used=510, bal=-10, avail=-10, alr=[])
    assert fired(spent(500, alr=[]), overdrawn) == []
    repaid = wallet(used=510, bal=490, avail=490, alr=[])
    assert fired(overdrawn, repaid) == [("credits.restored", "restored")]
    assert fired(repaid, wallet(used=520, bal=480, avail=480, alr=[])) == []


# -- state -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "state"),
    [
        (spent(100), "ok"),
        (spent(380), "alerting"),
        (spent(100, lat=100), "alerting"),
        (spent(480, held=20, avail=0), "depleted"),  # new holds get 402
        (spent(480, held=20, avail=0, ovr=True), "alerting"),  # overage: they do not
        (wallet(used=520, bal=-20, avail=-20, ovr=True), "depleted"),
        (spent(400, lim=400), "capped"),
        (wallet(used=510, bal=-10, avail=-10, lim=500), "capped"),
        (spent(100, alr=[]), "ok"),
    ],
)
def test_wallet_state(image: Json, state: str) -> None:
    assert wallet_state(image) == state


# -- ids and payloads ------------------------------------------------------------------------


def test_ids_are_stable_per_record_and_crossing() -> None:
    old, new = spent(360), spent(460)
    first = crossings(old, new, "4421584500000000017450439091", occurred_at=1)
    again = crossings(old, new, "4421584500000000017450439091", occurred_at=1)
    other = crossings(old, new, "4421584500000000017450439092", occurred_at=1)
    assert [a.id for a in first] == [a.id for a in again]
    assert len({a.id for a in first} | {a.id for a in other}) == 4
    assert all(a.id.startswith("alr_") and a.detail["id"] == a.id for a in first)


def test_the_detail_carries_the_wallet_and_the_crossing() -> None:
    (alert, _) = crossings(spent(360), spent(460), "s1", occurred_at=1795241000)
    assert alert.detail == {
        "id": alert.id,
        "wallet_id": "acme",
        "plan": "starter",
        "period": {"start": "2026-11-21T00:00:00.000Z", "end": "2026-12-21T00:00:00.000Z"},
        "occurred_at": "2026-11-21T06:03:20.000Z",
        "state": "alerting",
        "balance": "40",
        "available": "40",
        "used": "460",
        "allowance": "500",
        "threshold": {"type": "consumed_percent", "value": "75"},
    }


# -- property: every crossing fires once, until re-armed --------------------------------------

CONFIG = wallet_record.threshold_items(
    [
        Threshold("consumed_percent", Decimal(50)),
        Threshold("consumed_percent", Decimal(90)),
        Threshold("remaining_percent", Decimal(20)),
        Threshold("remaining_credits", Decimal(25)),
    ]
)

images = st.builds(
    lambda used, bal, allow, lat, lim: {
        "wallet_id": "p",
        "plan": "starter",
        "ps": Decimal(0),
        "pe": Decimal(1),
        "allow": Decimal(allow),
        "used": Decimal(used),
        "bal": Decimal(bal),
        "held": Decimal(0),
        "avail": Decimal(bal),
        "alr": CONFIG,
        **({"lat": Decimal(lat)} if lat is not None else {}),
        **({"lim": Decimal(lim)} if lim is not None else {}),
    },
    used=st.integers(0, 700),
    bal=st.integers(-50, 700),
    allow=st.sampled_from([0, 500]),
    lat=st.sampled_from([None, 300]),
    lim=st.sampled_from([None, 600]),
)


def _holds(key: str) -> Callable[[Json], bool]:
    if key == "depleted":
        return lambda w: w["bal"] <= 0
    if key == "spend:300":
        return lambda w: "lat" in w and w["used"] >= w["lat"]
    if key == "limit:wallet":
        return lambda w: "lim" in w and w["used"] >= w["lim"]
    (t,) = [t for t in thresholds_of({"alr": CONFIG}) if t.key == key]
    return lambda w: is_crossed(w, t)


KEYS = [
    *(t.key for t in thresholds_of({"alr": CONFIG})),
    "spend:300",
    "limit:wallet",
    "depleted",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(images, min_size=1, max_size=30))
def test_fires_alternate_with_re_arms(sequence: list[Json]) -> None:
    history: dict[str, list[str]] = {key: [] for key in [*KEYS, "restored"]}
    previous: Json | None = None
    for n, image in enumerate(sequence):
        keys = [a.key for a in crossings(previous, image, str(n), occurred_at=0)]
        assert len(keys) == len(set(keys))
        for key in KEYS:
            holds = _holds(key)
            was = previous is not None and holds(previous)
            if key in keys:
                assert not was and holds(image)
                history[key].append("fire")
            else:
                assert was or not holds(image)  # never past it without having fired
                if was and not holds(image):
                    history[key].append("re-arm")
        if "restored" in keys:
            history["restored"].append("fire")
        previous = image
    for key, events in history.items():
        if key in ("depleted", "restored"):
            continue
        # Never two fires without a re-arm between them.
        assert all(a != b for a, b in itertools.pairwise(events)), (key, events)
        assert not events or events[0] == "fire"
    # Depleted and restored alternate too, starting with depleted.
    both = []
    previous = None
    for n, image in enumerate(sequence):
        both += [
            a.detail_type
            for a in crossings(previous, image, str(n), occurred_at=0)
            if a.detail_type in ("credits.depleted", "credits.restored")
        ]
        previous = image
    assert all(a != b for a, b in itertools.pairwise(both)), both
    assert not both or both[0] == "credits.depleted"


# -- the published examples ------------------------------------------------------------------

SAMPLE = _sample_record()


def _examples() -> dict[str, tuple[str, Json | None, Json, str, float]]:
    """What each ``events/eventbridge-*.json`` shows: (event type, old, new, record, time)."""
    old = from_item(SAMPLE["dynamodb"]["OldImage"])
    new = from_item(SAMPLE["dynamodb"]["NewImage"])
    seq = SAMPLE["dynamodb"]["SequenceNumber"]
    at = float(SAMPLE["dynamodb"]["ApproximateCreationDateTime"])
    empty = dict(new, used=Decimal(500), bal=Decimal(0), avail=Decimal(0), drawn=Decimal(500))
    topped = dict(empty, bal=Decimal(500), avail=Decimal(500))
    limited_old, limited_new = dict(old, lim=Decimal(400)), dict(new, lim=Decimal(400))
    budgets = {"7f3a9c0e12b4": {"n": "ana", "c": Decimal(400), "r": Decimal(40), "u": old["used"]}}
    member_old = dict(old, mb=budgets)
    member_new = dict(
        new, mb={"7f3a9c0e12b4": dict(budgets["7f3a9c0e12b4"], r=Decimal(0), u=new["used"])}
    )
    return {
        "eventbridge-credits-threshold-crossed.json": (CROSSED, old, new, seq, at),
        "eventbridge-credits-depleted.json": (
            "credits.depleted",
            new,
            empty,
            "4421584600000000017450440012",
            at + 600,
        ),
        "eventbridge-credits-restored.json": (
            "credits.restored",
            empty,
            topped,
            "4421584700000000017450441377",
            at + 1800,
        ),
        "eventbridge-limit-reached.json": ("limit.reached", limited_old, limited_new, seq, at),
        "eventbridge-limit-reached-member.json": (
            "limit.reached",
            member_old,
            member_new,
            seq,
            at,
        ),
    }


def expected_detail(name: str) -> Json:
    kind, old, new, record, at = _examples()[name]
    (alert, *_) = [a for a in crossings(old, new, record, occurred_at=at) if a.detail_type == kind]
    return alert.detail


def test_every_eventbridge_example_is_what_the_code_publishes() -> None:
    files = sorted(p.name for p in EVENTS.glob("eventbridge-*.json"))
    assert files == sorted(_examples())
    kinds = set()
    for name in files:
        event = json.loads((EVENTS / name).read_text())
        detail = expected_detail(name)
        assert event["detail"] == detail, name
        assert event["source"] == "credit-meter"
        assert event["detail-type"] == _examples()[name][0]
        assert (event["version"], event["resources"]) == ("0", [])
        assert event["time"] == detail["occurred_at"][:19] + "Z"  # PutEvents' Time, in seconds
        kinds.add(event["detail-type"])
    assert kinds == set(alerts.EVENT_TYPES)


def test_docs_show_the_examples_as_they_are() -> None:
    text = (EVENTS.parent / "docs" / "events.md").read_text()
    blocks = [json.loads(b.split("```", 1)[0]) for b in text.split("```json\n")[1:]]
    shown = [b for b in blocks if "version" in b]  # the envelopes, not the rule patterns
    files = [json.loads(p.read_text()) for p in sorted(EVENTS.glob("eventbridge-*.json"))]
    assert sorted(shown, key=json.dumps) == sorted(files, key=json.dumps)
