"""Pure units: amounts, the price catalog, reservation ids and the bucket arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from credit_meter.core import wallets
from credit_meter.core.catalog import UsageLine, catalog
from credit_meter.core.errors import InvalidRequest
from credit_meter.core.ids import ReservationId, op_key
from credit_meter.core.money import AmountError, fmt, from_micros, parse_amount, to_micros
from credit_meter.core.wallets import Bucket

D = Decimal

# -- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "amount"),
    [
        ("1", D("1")),
        (1, D("1")),
        (D("2.5"), D("2.5")),
        ("2.5", D("2.5")),
        ("0.000001", D("0.000001")),
        ("0.1234560", D("0.123456")),  # seven digits, but the seventh is a zero
        ("007", D("7")),
        ("-5", D("-5")),
        ("-0.5", D("-0.5")),
        ("1000000000000", D("1000000000000")),
        (10**12, D(10**12)),
        ("-1000000000000", D("-1000000000000")),
        # JSON numbers reach parse_amount as int or Decimal: their exponent syntax is fine
        (D("1e3"), D("1000")),
        (D("1.5E+1"), D("15")),
        (D("25e-1"), D("2.5")),
    ],
    ids=repr,
)
def test_parse_amount_accepts(given: object, amount: Decimal) -> None:
    parsed = parse_amount(given)
    assert parsed == amount
    assert parsed.as_tuple().exponent == -6  # always six fractional digits


@pytest.mark.parametrize(
    "given",
    [
        True,
        False,
        None,
        1.5,
        [1],
        {"v": 1},
        b"1",
        "",
        " ",
        "abc",
        "1,5",
        "1 000",
        "0x10",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        "0.1234567",
        "1e-7",
        "0.0000001",
        "1000000000000.000001",
        "1e30",
        "99999999999999",
        10**12 + 1,
        D("1e30"),
        D("-1e13"),
        D("NaN"),
        D("Infinity"),
        # the size is checked before the fractional digits, so huge precise amounts are refused
        "10000000000000000000000000.1234567",
        "-10000000000000000000000000.1234567",
        D("10000000000000000000000000.1234567"),
        D("1.0000001e30"),
        # a string holds a plain decimal: ASCII digits, an optional "-" and fraction, no more
        " 2.5 ",
        " 1",
        "1 ",
        "\t1",
        "1\n",
        "+1",
        "--1",
        "-",
        ".5",
        "-.5",
        "5.",
        "1.2.3",
        "1e3",
        "1E3",
        "1e-3",
        "1_000",
        "\u0661",  # ARABIC-INDIC DIGIT ONE
        "\uff11",  # FULLWIDTH DIGIT ONE
        "1\u00a0000",  # no-break space
    ],
    ids=repr,
)
def test_parse_amount_refuses(given: object) -> None:
    with pytest.raises(AmountError):
        parse_amount(given)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (D("12.500000"), "12.5"),
        (D("12.5"), "12.5"),
        (D("0"), "0"),
        (D("-0"), "0"),
        (D("0.000000"), "0"),
        (D("-0.000000"), "0"),
        (D("1E+3"), "1000"),
        (D("1000000000000"), "1000000000000"),
        (D("0.000001"), "0.000001"),
        (D("-20"), "-20"),
        (D("-0.5"), "-0.5"),
        (D("100"), "100"),
    ],
    ids=str,
)
def test_fmt(amount: Decimal, text: str) -> None:
    assert fmt(amount) == text


@pytest.mark.parametrize("amount", ["0", "0.000001", "1", "12.345678", "1000000000000"])
def test_micros_round_trip(amount: str) -> None:
    assert from_micros(to_micros(D(amount))) == D(amount)


# -- catalog --------------------------------------------------------------------------------

PER_UNIT = {  # the default catalog (catalog.json)
    "task_completed": "0.25",
    "app_call": "0.05",
    "compute_minute": "1",
    "voice_minute": "3",
    "meeting_minute": "1.5",
    "image_standard": "4",
    "image_hd": "8",
    "web_search": "0",
}
TOKEN_METERS = ["input_tokens", "output_tokens", "reasoning_tokens"]
MODEL_OF_TIER = {"fast": "gpt-4o-mini", "standard": "claude-sonnet", "advanced": "o3"}


def price(*lines: UsageLine) -> Decimal:
    return catalog().price(list(lines))


def test_every_meter_has_a_price() -> None:
    assert set(catalog().meters) == set(PER_UNIT) | set(TOKEN_METERS)


@pytest.mark.parametrize(("meter", "credits"), PER_UNIT.items())
def test_unit_meters(meter: str, credits: str) -> None:
    assert price(UsageLine(meter, D(1))) == D(credits)
    assert price(UsageLine(meter, D(3))) == D(credits) * 3


@pytest.mark.parametrize("tier", MODEL_OF_TIER)
@pytest.mark.parametrize("meter", TOKEN_METERS)
def test_token_meters_are_priced_per_thousand_tokens_by_tier(meter: str, tier: str) -> None:
    per_thousand = catalog().tiers[tier][meter]
    model = MODEL_OF_TIER[tier]
    assert catalog().models[model] == tier
    assert price(UsageLine(meter, D(1000), model)) == per_thousand
    assert price(UsageLine(meter, D(1500), model)) == per_thousand * D("1.5")


@pytest.mark.parametrize("meter", TOKEN_METERS)
def test_fast_is_about_ten_times_cheaper_than_advanced(meter: str) -> None:
    tiers = catalog().tiers
    ratio = tiers["advanced"][meter] / tiers["fast"][meter]
    assert 8 <= ratio <= 12, ratio
    assert tiers["fast"][meter] < tiers["standard"][meter] < tiers["advanced"][meter]


def test_every_model_has_a_known_tier() -> None:
    assert set(catalog().models.values()) <= set(catalog().tiers)


@pytest.mark.parametrize(
    ("lines", "credits"),
    [
        ([UsageLine("input_tokens", D(1500), "o3")], "0.3"),
        ([UsageLine("input_tokens", D(1), "gpt-4o-mini")], "0.00002"),
        # 0.025 tokens x 0.00002 = 0.0000005: rounded half up to six digits
        ([UsageLine("input_tokens", D("0.025"), "gpt-4o-mini")], "0.000001"),
        ([UsageLine("input_tokens", D("0.024"), "gpt-4o-mini")], "0"),
        (
            [
                UsageLine("image_hd", D(2)),
                UsageLine("app_call", D(3)),
                UsageLine("output_tokens", D(500), "gemini-pro"),
            ],
            "16.35",
        ),
        ([UsageLine("web_search", D(1000))], "0"),
        ([UsageLine("image_hd", D(10**12))] * 100, "800000000000000"),
    ],
)
def test_price_sums_lines_and_rounds_half_up(lines: list[UsageLine], credits: str) -> None:
    assert price(*lines) == D(credits)


@pytest.mark.parametrize(
    ("lines", "fields"),
    [
        ([UsageLine("teleport", D(1))], ["usage.0.meter"]),
        ([UsageLine("input_tokens", D(1))], ["usage.0.model"]),
        ([UsageLine("input_tokens", D(1), "gpt-99")], ["usage.0.model"]),
        ([UsageLine("image_hd", D(1), "o3")], ["usage.0.model"]),
        (
            [
                UsageLine("app_call", D(1)),
                UsageLine("nope", D(1)),
                UsageLine("output_tokens", D(1)),
            ],
            ["usage.1.meter", "usage.2.model"],
        ),
    ],
)
def test_price_names_every_bad_line(lines: list[UsageLine], fields: list[str]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        price(*lines)
    assert [p.field for p in refused.value.problems] == fields


def test_plans_and_sources_match_the_design() -> None:
    cat = catalog()
    assert {name: plan.allowance for name, plan in cat.plans.items()} == {
        "trial": D(0),
        "free": D(50),
        "starter": D(500),
        "pro": D(2500),
        "business": D(2000),
        "scale": D(10000),
        "enterprise": None,
    }
    # the seeds: new accounts start with 1,000 credits; allowances do not roll over unless a
    # plan says so; one plan's purchased packs reset with the period
    assert cat.plans["trial"].welcome_bonus == D(1000)
    assert [p.name for p in cat.plans.values() if p.rollover_cap] == ["pro", "scale"]
    assert [p.name for p in cat.plans.values() if p.purchases_expire_at_reset] == ["business"]
    assert [p.name for p in cat.plans.values() if p.overage] == ["scale"]
    assert cat.referral.max_rewarded_per_referrer == 10
    assert set(cat.sources) == {
        "monthly",
        "rollover",
        "purchase",
        "promo",
        "welcome",
        "referral",
        "manual",
        "transfer",
    }
    # with the default priorities, purchased credits are spent last
    assert all(
        cat.sources["purchase"].priority > s.priority
        for name, s in cat.sources.items()
        if name not in ("purchase", "transfer")
    )


# -- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credits", ["0", "0.000001", "0.3", "12.25", "999999.999999", "1000000000000"]
)
def test_reservation_id_round_trip(credits: str) -> None:
    rid = ReservationId(op_key("w1", "reserve", None), D(credits))
    text = str(rid)
    assert text.startswith("rsv_")
    assert ReservationId.parse(text) == rid


@pytest.mark.parametrize(
    "text",
    [
        "",
        "rsv_",
        "rsv_abc_1",
        "RSV_" + "a" * 20 + "_1",
        "rsv_" + "a" * 20 + "_",
        "rsv_" + "g" * 20 + "_1",
        "rsv_" + "a" * 21 + "_1",
        "rsv_" + "a" * 20 + "_1_2",
        "rsv_" + "a" * 20 + "_" + "z" * 17,
        "rsv_" + "a" * 20 + "_A",
        " rsv_" + "a" * 20 + "_1",
        "rsv_" + "a" * 20 + "_1\n",  # the whole text must match: no trailing newline
        "rsv_" + "a" * 20 + "_1\r\n",
        "rsv_" + "a" * 20 + "_1 ",
    ],
    ids=repr,
)
def test_reservation_id_parse_refuses(text: str) -> None:
    assert ReservationId.parse(text) is None


def test_op_key_is_derived_from_the_idempotency_key_per_wallet_and_operation() -> None:
    key = op_key("w1", "reserve", "k")
    assert key == op_key("w1", "reserve", "k")
    assert (
        len(
            {
                key,
                op_key("w2", "reserve", "k"),
                op_key("w1", "charge", "k"),
                op_key("w1", "reserve", "k2"),
            }
        )
        == 4
    )
    assert op_key("w1", "reserve", None) != op_key("w1", "reserve", None)  # random


# -- buckets --------------------------------------------------------------------------------

DAY = 86_400


def bucket(
    name: str,
    amount: str,
    *,
    source: str = "manual",
    priority: int = 10,
    created: int = 0,
    expires: int | None = None,
) -> Bucket:
    return Bucket(name, source, D(amount), priority, created, expires)


@pytest.mark.parametrize(
    ("drawn", "left"),
    [
        ("0", ["10", "20", "5"]),
        ("4", ["6", "20", "5"]),
        ("10", ["0", "20", "5"]),
        ("15", ["0", "15", "5"]),
        ("34.5", ["0", "0", "0.5"]),
        ("35", ["0", "0", "0"]),
        ("50", ["0", "0", "0"]),  # an overdraft leaves nothing anywhere
    ],
)
def test_remaining_draws_in_list_order(drawn: str, left: list[str]) -> None:
    buckets = [bucket("a", "10"), bucket("b", "20"), bucket("c", "5")]
    views = wallets.remaining(buckets, D(drawn))
    assert [v.bucket for v in views] == buckets
    assert [v.remaining for v in views] == [D(x) for x in left]
    assert wallets.deficit(buckets, D(drawn)) == max(D(0), D(drawn) - 35)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            bucket("x", "1", priority=0), bucket("y", "1", priority=10), id="lower-priority-first"
        ),
        pytest.param(
            bucket("x", "1", priority=10, expires=9 * DAY),
            bucket("y", "1", priority=20, expires=1 * DAY),
            id="priority-beats-expiry",
        ),
        pytest.param(
            bucket("x", "1", expires=1 * DAY),
            bucket("y", "1", expires=2 * DAY),
            id="soonest-expiry-first",
        ),
        pytest.param(
            bucket("x", "1", expires=400 * DAY), bucket("y", "1"), id="never-expiring-last"
        ),
        pytest.param(
            bucket("x", "1", source="promo", expires=DAY),
            bucket("y", "1", source="monthly", expires=DAY),
            id="promotional-before-allowance",
        ),
        pytest.param(
            bucket("x", "1", source="manual", priority=20),
            bucket("y", "1", source="purchase", priority=20),
            id="manual-before-paid-at-equal-priority",
        ),
        pytest.param(
            bucket("x", "1", source="promo", created=1),
            bucket("y", "1", source="welcome", created=5),
            id="same-rank-oldest-first",
        ),
        pytest.param(
            bucket("x", "1", source="monthly", created=9),
            bucket("y", "1", source="purchase", priority=10, created=1),
            id="allowance-before-paid-even-if-newer",
        ),
    ],
)
def test_burn_key_order(first: Bucket, second: Bucket) -> None:
    cat = catalog()
    assert wallets.burn_key(first, cat) < wallets.burn_key(second, cat)
    assert sorted([second, first], key=lambda b: wallets.burn_key(b, cat)) == [first, second]


def test_default_sources_burn_promotional_then_monthly_then_purchased() -> None:
    cat = catalog()
    end_of_month = 30 * DAY
    buckets = [
        bucket("p", "1", source="purchase", priority=cat.sources["purchase"].priority),
        bucket("m", "1", source="monthly", expires=end_of_month),
        bucket("r", "1", source="promo", expires=end_of_month),
    ]
    order = sorted(buckets, key=lambda b: wallets.burn_key(b, cat))
    assert [b.id for b in order] == ["r", "m", "p"]


def test_add_bucket_keeps_remainders_and_sorts() -> None:
    cat = catalog()
    buckets = [bucket("m", "50", source="monthly", expires=30 * DAY)]
    new = bucket("p", "100", source="purchase", priority=20, created=1)
    rebased = wallets.add_bucket(buckets, D(20), new, cat)
    assert [(b.id, b.amount) for b in rebased.buckets] == [("m", D(30)), ("p", D(100))]
    assert rebased.drawn_delta == D(-20) and rebased.repaid == 0

    promo = bucket("r", "5", source="promo", expires=DAY, created=2)
    again = wallets.add_bucket(rebased.buckets, D(0), promo, cat)
    assert [b.id for b in again.buckets] == ["r", "m", "p"]


def test_add_bucket_drops_spent_buckets() -> None:
    buckets = [bucket("a", "10"), bucket("b", "10")]
    rebased = wallets.add_bucket(buckets, D(10), bucket("c", "1", created=1), catalog())
    assert [(b.id, b.amount) for b in rebased.buckets] == [("b", D(10)), ("c", D(1))]


@pytest.mark.parametrize(
    ("grant", "repaid", "kept", "delta"),
    [
        pytest.param("5", "5", [], "-55", id="partly-repays"),  # still 15 short
        pytest.param("20", "20", [], "-70", id="exactly-repays"),
        pytest.param("30", "20", [("g", "10")], "-70", id="repays-then-keeps-the-rest"),
    ],
)
def test_add_bucket_repays_an_overdraft_first(
    grant: str, repaid: str, kept: list[tuple[str, str]], delta: str
) -> None:
    buckets = [bucket("m", "50", source="monthly")]
    rebased = wallets.add_bucket(buckets, D(70), bucket("g", grant, source="purchase"), catalog())
    assert rebased.repaid == D(repaid)
    assert [(b.id, str(b.amount)) for b in rebased.buckets] == kept
    assert rebased.drawn_delta == D(delta)
    # what is still owed after the grant is the deficit of the new list at the new ``drawn``
    owed = max(D(0), D(20) - D(grant))
    assert wallets.deficit(rebased.buckets, D(70) + rebased.drawn_delta) == owed


# -- billing periods ------------------------------------------------------------------------


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "anchor", "expected"),
    [
        (utc(2026, 1, 31), 31, utc(2026, 2, 28)),
        (utc(2028, 1, 31), 31, utc(2028, 2, 29)),  # leap year
        (utc(2026, 2, 28), 31, utc(2026, 3, 31)),  # back on the anchor day
        (utc(2026, 3, 31), 31, utc(2026, 4, 30)),
        (utc(2026, 4, 30), 31, utc(2026, 5, 31)),
        (utc(2026, 1, 30), 30, utc(2026, 2, 28)),
        (utc(2026, 2, 28), 30, utc(2026, 3, 30)),
        (utc(2026, 1, 15), 15, utc(2026, 2, 15)),
        (utc(2026, 12, 31), 31, utc(2027, 1, 31)),  # over the year end
        (utc(2026, 12, 1), 1, utc(2027, 1, 1)),
    ],
    ids=lambda v: v.date().isoformat() if isinstance(v, datetime) else str(v),
)
def test_add_month_clamps_to_the_end_of_short_months(
    moment: datetime, anchor: int, expected: datetime
) -> None:
    assert wallets.add_month(moment, anchor) == expected


def test_a_year_of_periods_anchored_on_the_31st() -> None:
    moment, ends = utc(2026, 1, 31), []
    for _ in range(12):
        moment = wallets.add_month(moment, 31)
        ends.append(moment.date().isoformat())
    assert ends == [
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
        "2026-11-30",
        "2026-12-31",
        "2027-01-31",
    ]


def test_first_period_starts_at_midnight_utc_of_the_creation_day() -> None:
    start, end = wallets.first_period(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (utc(2026, 1, 31), utc(2026, 2, 28))
