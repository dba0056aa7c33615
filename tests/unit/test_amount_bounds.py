"""Every amount field of every route refuses numbers it cannot hold with 422, never a 5xx.

A JSON number is read as a ``Decimal`` and ``Decimal("1e1000000")`` is a valid value, but any
arithmetic on it under the default context (``abs``, ``quantize``) raises ``decimal.Overflow``:
the parser must decide without such arithmetic. Each case sends one amount field at a time,
through the real handler, with numbers past the context's exponent limits either way, a huge
but representable one, and the strings that spell them; nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bad_inputs import check_problem

W = "/v1/wallets/w1"
RID = "/v1/wallets/w1/reservations/{rid}"

# (route name, method, path, body with X where the amount goes, the field the 422 names)
AMOUNT_FIELDS: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("wallet-allowance", "PUT", W, {"plan": "starter", "allowance": "X"}, "allowance"),
    (
        "reserve-credits",
        "POST",
        f"{W}/reservations",
        {"feature": "chat", "credits": "X"},
        "credits",
    ),
    (
        "reserve-quantity",
        "POST",
        f"{W}/reservations",
        {"feature": "chat", "usage": [{"meter": "app_call", "quantity": "X"}]},
        "usage.0.quantity",
    ),
    ("commit-credits", "POST", f"{RID}/commit", {"credits": "X"}, "credits"),
    (
        "commit-quantity",
        "POST",
        f"{RID}/commit",
        {"usage": [{"meter": "app_call", "quantity": "X"}]},
        "usage.0.quantity",
    ),
    ("charge-credits", "POST", f"{W}/charges", {"feature": "chat", "credits": "X"}, "credits"),
    (
        "charge-quantity",
        "POST",
        f"{W}/charges",
        {"feature": "chat", "usage": [{"meter": "app_call", "quantity": "X"}]},
        "usage.0.quantity",
    ),
    (
        "quote-quantity",
        "POST",
        f"{W}/quote",
        {"usage": [{"meter": "app_call", "quantity": "X"}]},
        "usage.0.quantity",
    ),
    ("grant-credits", "POST", f"{W}/grants", {"credits": "X", "source": "promo"}, "credits"),
    ("adjust-credits", "POST", f"{W}/adjustments", {"credits": "X", "reason": "r"}, "credits"),
    (
        "transfer-credits",
        "POST",
        f"{W}/transfers",
        {"to_wallet_id": "w2", "credits": "X"},
        "credits",
    ),
    ("promo-credits", "POST", "/v1/promo-codes", {"code": "BIGNUM", "credits": "X"}, "credits"),
    (
        "checkout-amount",
        "POST",
        f"{W}/checkout",
        {
            "amount": "X",
            "currency": "usd",
            "success_url": "https://example.test/ok",
            "cancel_url": "https://example.test/no",
        },
        "amount",
    ),
    (
        "auto-topup-threshold",
        "PUT",
        f"{W}/auto-topup",
        {"enabled": True, "threshold": "X"},
        "threshold",
    ),
    ("limits-alert", "PUT", f"{W}/limits", {"alert_threshold": "X"}, "alert_threshold"),
    ("limits-allowed", "PUT", f"{W}/limits", {"allowed_limit": "X"}, "allowed_limit"),
    (
        "alerts-value",
        "PUT",
        f"{W}/alerts",
        {"thresholds": [{"type": "remaining_credits", "value": "X"}]},
        "thresholds.0.value",
    ),
    ("member-budget", "PUT", f"{W}/members/m1/budget", {"budget": "X"}, "budget"),
]

# Raw JSON number tokens (and strings): past Emax, past Emin, huge but within the context.
NUMBERS = ["1e1000000", "-1e1000000", "1E+999999999999999999", "1e-1000000", "1e400"]
NUMBERS += ['"1e1000000"', '"' + "9" * 5000 + '"']


def _raw_body(body: dict[str, Any], number: str) -> str:
    """The body's JSON text with the raw number token in place of ``"X"``."""
    text = json.dumps(body)
    assert text.count('"X"') == 1
    return text.replace('"X"', number)


CASES = [
    pytest.param(method, path, _raw_body(body, number), field, id=f"{name}-{number[:12]}")
    for name, method, path, body, field in AMOUNT_FIELDS
    for number in NUMBERS
]


@pytest.fixture(scope="module")
def world(module_table: str, api: Any, table_items: Any) -> dict[str, Any]:
    for wallet in ("w1", "w2"):
        status, _, out = api("PUT", f"/v1/wallets/{wallet}", {"plan": "free"})
        assert status == 201, out
        status, _, out = api("POST", f"{W}/reservations", {"feature": "chat", "credits": "1"})
    assert status == 201, out
    return {"rid": out["reservation_id"], "items": table_items()}


# An integer token longer than Python's int conversion limit (4,300 digits) is refused while
# the body is read, before any field: 400 malformed-request.
TOO_MANY_DIGITS = "9" * 5000


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES)
def test_an_amount_out_of_range_is_422(
    api: Any, table_items: Any, world: dict[str, Any], method: str, path: str, body: str, field: str
) -> None:
    response = api(method, path.format(rid=world["rid"]), body)
    check_problem(response, {"status": 422, "fields": (field,), "codes": ("invalid-request",)})
    assert table_items() == world["items"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [pytest.param(m, p, _raw_body(b, TOO_MANY_DIGITS), id=n) for n, m, p, b, _ in AMOUNT_FIELDS],
)
def test_an_integer_past_the_digit_limit_is_400(
    api: Any, table_items: Any, world: dict[str, Any], method: str, path: str, body: str
) -> None:
    response = api(method, path.format(rid=world["rid"]), body)
    check_problem(response, {"status": 400, "fields": (None,), "codes": ("malformed-request",)})
    assert table_items() == world["items"]
