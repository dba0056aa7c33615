"""Bad input on the top-up routes (issue "Top-ups with Stripe"): the right 4xx problem, never a
5xx, nothing written to the table and nothing asked of Stripe.

Every case of ``CASES`` runs against one module-wide setup (``world``): wallets ``w1`` and
``w2`` on the free plan, each with one paid checkout told by ``checkout.session.completed``
(``w1``'s payment is ``{w1_payment}`` in paths, ``w2``'s ``{w2_payment}``); neither wallet has
a saved card (the sessions name a customer but no payment method). After its request each
case compares ``GET /v1/wallets/w1`` and a scan of the whole table with what they showed after
the setup, and checks that the fake Stripe API (``fake_stripe``) received nothing.

Inputs the service once accepted are in ``KNOWN_BUGS`` (each runs on a table of its own, as
it wrote then); every one is refused now.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devtools import stripe_events as se
from tests.bad_inputs import case, check_problem

Api = Callable[..., tuple[int, dict[str, str], Any]]

W = "/v1/wallets/w1"
NOWHERE = "/v1/wallets/no-such-wallet"
BAD_ID = "/v1/wallets/-dash-first"
URLS = {"success_url": "https://app.example.test/ok", "cancel_url": "https://app.example.test/no"}
CARD = {"customer_id": "cus_unitFakeBadInputs", "payment_method_id": "pm_card_visa"}
ENABLE = {"enabled": True, "threshold": "100", "pack": "pack_500"}


# -- checkout -------------------------------------------------------------------------------

CHECKOUT = f"{W}/checkout"
PACK = {"pack": "pack_500", **URLS}
FIAT = {"amount": "10", "currency": "eur", **URLS}

CHECKOUT_FIELDS: dict[str, tuple[Any, str | tuple[str, ...]]] = {
    "unknown-pack": ({**PACK, "pack": "pack_1"}, "pack"),
    "pack-empty": ({**PACK, "pack": ""}, "pack"),
    "pack-number": ({**PACK, "pack": 500}, "pack"),
    "pack-null-and-no-amount": ({**PACK, "pack": None}, ("pack", "amount")),
    "pack-currency-mismatch": ({**PACK, "currency": "eur"}, "currency"),
    "amount-below-minimum": ({**FIAT, "amount": "0.99"}, "amount"),
    "amount-zero": ({**FIAT, "amount": "0"}, "amount"),
    "amount-negative": ({**FIAT, "amount": "-10"}, "amount"),
    "amount-above-maximum": ({**FIAT, "amount": "10000.01"}, "amount"),
    "amount-far-above-maximum": ({**FIAT, "amount": "99999999999999"}, "amount"),
    "amount-3-decimals": ({**FIAT, "amount": "10.123"}, "amount"),
    "amount-3-decimals-number": (
        '{"amount": 10.123, "currency": "eur", "success_url": "https://a.test/ok", '
        '"cancel_url": "https://a.test/no"}',
        "amount",
    ),
    "amount-7-decimals": ({**FIAT, "amount": "10.0000001"}, "amount"),
    "amount-words": ({**FIAT, "amount": "ten"}, "amount"),
    "amount-bool": ({**FIAT, "amount": True}, "amount"),
    "amount-list": ({**FIAT, "amount": [10]}, "amount"),
    "amount-NaN-string": ({**FIAT, "amount": "NaN"}, "amount"),
    "amount-Infinity-string": ({**FIAT, "amount": "Infinity"}, "amount"),
    "amount-exponent-string": ({**FIAT, "amount": "1e1"}, "amount"),
    "amount-without-currency": ({"amount": "10", **URLS}, "currency"),
    "amount-currency-mismatch": ({**FIAT, "currency": "usd"}, "currency"),
    "currency-word": ({**FIAT, "currency": "euro"}, "currency"),
    "currency-symbol": ({**FIAT, "currency": "€"}, "currency"),
    "currency-digits": ({**FIAT, "currency": "978"}, "currency"),
    "currency-number": ({**FIAT, "currency": 978}, "currency"),
    "pack-and-amount": ({**PACK, "amount": "10", "currency": "usd"}, ("pack", "amount")),
    "neither-pack-nor-amount": (dict(URLS), ("pack", "amount")),
    "success-url-missing": ({"pack": "pack_500", "cancel_url": URLS["cancel_url"]}, "success_url"),
    "cancel-url-missing": ({"pack": "pack_500", "success_url": URLS["success_url"]}, "cancel_url"),
    "success-url-not-a-url": ({**PACK, "success_url": "not a url"}, "success_url"),
    "success-url-relative": ({**PACK, "success_url": "/billing/done"}, "success_url"),
    "success-url-ftp": ({**PACK, "success_url": "ftp://app.example.test/ok"}, "success_url"),
    "success-url-javascript": ({**PACK, "success_url": "javascript:alert(1)"}, "success_url"),
    "success-url-no-host": ({**PACK, "success_url": "https://"}, "success_url"),
    "success-url-space": ({**PACK, "success_url": "https://a.test/o k"}, "success_url"),
    "success-url-newline": ({**PACK, "success_url": "https://a.test/ok\n"}, "success_url"),
    "success-url-too-long": (
        {**PACK, "success_url": "https://a.test/" + "x" * 2048},
        "success_url",
    ),
    "success-url-number": ({**PACK, "success_url": 42}, "success_url"),
    "cancel-url-empty": ({**PACK, "cancel_url": ""}, "cancel_url"),
    "cancel-url-object": ({**PACK, "cancel_url": {"url": "https://a.test"}}, "cancel_url"),
    "save-payment-method-null": ({**PACK, "save_payment_method": None}, "save_payment_method"),
    "save-payment-method-list": ({**PACK, "save_payment_method": [True]}, "save_payment_method"),
    "extra-field": ({**PACK, "coupon": "FREE"}, "coupon"),
    "credits-field": ({**PACK, "credits": "1000000"}, "credits"),
    "wallet-field": ({**PACK, "wallet_id": "w2"}, "wallet_id"),
}


def checkout_cases() -> list[Any]:
    cases = [
        case(f"checkout-{name}", "POST", CHECKOUT, body, 422, field)
        for name, (body, field) in CHECKOUT_FIELDS.items()
    ]
    # The body and the Idempotency-Key are read as on every route of the metering function
    # (tests/unit/test_bad_inputs.py has every bad body and key): one of each kind here.
    cases += [
        case("checkout-malformed-json", "POST", CHECKOUT, '{"pack": ', 400),
        case("checkout-json-array", "POST", CHECKOUT, "[]", 400),
        case("checkout-empty-body", "POST", CHECKOUT, None, 400),
        case(
            "checkout-text-plain",
            "POST",
            CHECKOUT,
            json.dumps(PACK),
            415,
            headers={"content-type": "text/plain"},
        ),
        case("checkout-oversized", "POST", CHECKOUT, json.dumps({**PACK, "x": "y" * 20000}), 413),
        case("checkout-unknown-wallet", "POST", f"{NOWHERE}/checkout", PACK, 404),
        case("checkout-unknown-wallet-fiat", "POST", f"{NOWHERE}/checkout", FIAT, 404),
        case("checkout-bad-wallet-id", "POST", f"{BAD_ID}/checkout", PACK, 422, "wallet_id"),
        case(
            "checkout-idempotency-key-too-long",
            "POST",
            CHECKOUT,
            PACK,
            422,
            "Idempotency-Key",
            headers={"Idempotency-Key": "k" * 256},
        ),
    ]
    return cases


# -- payments list and invoices -------------------------------------------------------------


def payments_cases() -> list[Any]:
    path = f"{W}/payments"
    # the paging model of every list (PageQuery), tested in full on the transactions list
    # (tests/unit/test_bad_inputs.py): one limit below the range, one not a number
    bad_limits = {"zero": "0", "abc": "abc"}
    bad_cursors = {
        "garbage": "!!!not-a-cursor!!!",
        "empty": "",
        "wallet-key": "Vw",  # base64url of "W"
        "of-the-transactions-list": "VCMwMDAwMDAwMDAwMDk",  # "T#000000000009"
        "of-the-grants-list": "RyN4",  # "G#x"
        "settings-key": "QQ",  # "A": the auto top-up settings
        "too-long": "A" * 201,
    }
    cases = [
        case(f"payments-limit-{n}", "GET", path, None, 422, "limit", query=f"limit={v}")
        for n, v in bad_limits.items()
    ]
    cases += [
        case(f"payments-cursor-{n}", "GET", path, None, 422, "cursor", query=f"cursor={v}")
        for n, v in bad_cursors.items()
    ]
    cases += [
        case("payments-unknown-parameter", "GET", path, None, 422, "page", query="page=2"),
        case("payments-unknown-wallet", "GET", f"{NOWHERE}/payments", None, 404),
        case("payments-bad-wallet-id", "GET", f"{BAD_ID}/payments", None, 422, "wallet_id"),
    ]
    return cases


def invoice_cases() -> list[Any]:
    def invoice(name: str, payment: str, prefix: str = W, **kw: Any) -> Any:
        path = f"{prefix}/payments/{payment}/invoice"
        kw.setdefault("code", "payment-not-found")
        return case(f"invoice-{name}", "GET", path, None, kw.pop("status", 404), **kw)

    return [
        invoice("a-charge-id", "ch_3QabcdefghijklmnopQRSTUV"),
        invoice("a-session-id", "cs_test_abcdef"),
        invoice("empty-suffix", "pi_"),
        invoice("upper-case-prefix", "PI_3Qabcdefghijklmnop"),
        invoice("dash", "pi_3Qabc-def"),
        invoice("dot", "pi_3Qabc.def"),
        invoice("too-long", "pi_" + "a" * 300),
        invoice("unknown", "pi_3QunitFakeNoSuchPayment00"),
        invoice("another-wallets", "{w2_payment}"),
        invoice(
            "unknown-wallet",
            "{w2_payment}",
            NOWHERE,
            code=("payment-not-found", "wallet-not-found"),
        ),
        invoice(
            "bad-wallet-id",
            "{w1_payment}",
            BAD_ID,
            status=422,
            field="wallet_id",
            code="invalid-request",
        ),
    ]


# -- auto top-up ----------------------------------------------------------------------------

AUTO = f"{W}/auto-topup"
WITH_CARD = {**ENABLE, **CARD}

AUTO_TOPUP_FIELDS: dict[str, tuple[Any, str | tuple[str, ...]]] = {
    "enabled-missing": ({"threshold": "100", "pack": "pack_500", **CARD}, "enabled"),
    "enabled-null": ({**WITH_CARD, "enabled": None}, "enabled"),
    "enabled-list": ({**WITH_CARD, "enabled": [True]}, "enabled"),
    "enabled-words": ({**WITH_CARD, "enabled": "sure"}, "enabled"),
    "threshold-negative": ({**WITH_CARD, "threshold": "-1"}, "threshold"),
    "threshold-negative-number": ({**WITH_CARD, "threshold": -0.5}, "threshold"),
    "threshold-words": ({**WITH_CARD, "threshold": "lots"}, "threshold"),
    "threshold-7-decimals": ({**WITH_CARD, "threshold": "1.0000001"}, "threshold"),
    "threshold-huge": ({**WITH_CARD, "threshold": "99999999999999"}, "threshold"),
    "threshold-bool": ({**WITH_CARD, "threshold": True}, "threshold"),
    "threshold-NaN-string": ({**WITH_CARD, "threshold": "NaN"}, "threshold"),
    "threshold-missing-to-enable": ({"enabled": True, "pack": "pack_500", **CARD}, "threshold"),
    "pack-missing-to-enable": ({"enabled": True, "threshold": "100", **CARD}, "pack"),
    "unknown-pack": ({**WITH_CARD, "pack": "pack_1"}, "pack"),
    "pack-number": ({**WITH_CARD, "pack": 500}, "pack"),
    "enabling-without-a-saved-card": (dict(ENABLE), "payment_method_id"),
    "customer-without-payment-method": (
        {**ENABLE, "customer_id": CARD["customer_id"]},
        ("payment_method_id", "customer_id"),
    ),
    "payment-method-without-customer": (
        {**ENABLE, "payment_method_id": "pm_card_visa"},
        ("payment_method_id", "customer_id"),
    ),
    "customer-id-space": ({**WITH_CARD, "customer_id": "cus 123"}, "customer_id"),
    "customer-id-too-short": ({**WITH_CARD, "customer_id": "c"}, "customer_id"),
    "customer-id-too-long": ({**WITH_CARD, "customer_id": "cus_" + "a" * 300}, "customer_id"),
    "customer-id-number": ({**WITH_CARD, "customer_id": 12345}, "customer_id"),
    "payment-method-id-slash": (
        {**WITH_CARD, "payment_method_id": "pm_card/visa"},
        "payment_method_id",
    ),
    "payment-method-id-empty": ({**WITH_CARD, "payment_method_id": ""}, "payment_method_id"),
    "extra-field": ({**WITH_CARD, "amount": "10"}, "amount"),
    "state-field": ({**WITH_CARD, "state": "armed"}, "state"),
}


def auto_topup_cases() -> list[Any]:
    cases = [
        case(f"auto-topup-{name}", "PUT", AUTO, body, 422, field)
        for name, (body, field) in AUTO_TOPUP_FIELDS.items()
    ]
    cases += [
        case("auto-topup-malformed-json", "PUT", AUTO, '{"enabled": ', 400),
        case("auto-topup-json-array", "PUT", AUTO, "[]", 400),
        case("auto-topup-json-true", "PUT", AUTO, "true", 400),
        case("auto-topup-empty-body", "PUT", AUTO, None, 400),
        case(
            "auto-topup-text-plain",
            "PUT",
            AUTO,
            json.dumps(WITH_CARD),
            415,
            headers={"content-type": "text/plain"},
        ),
        case("auto-topup-oversized", "PUT", AUTO, json.dumps({"x": "y" * 20000}), 413),
        case("auto-topup-unknown-wallet", "PUT", f"{NOWHERE}/auto-topup", WITH_CARD, 404),
        case(
            "auto-topup-unknown-wallet-disable",
            "PUT",
            f"{NOWHERE}/auto-topup",
            {"enabled": False},
            404,
        ),
        case(
            "auto-topup-bad-wallet-id", "PUT", f"{BAD_ID}/auto-topup", WITH_CARD, 422, "wallet_id"
        ),
        case("get-auto-topup-unknown-wallet", "GET", f"{NOWHERE}/auto-topup", None, 404),
        case(
            "get-auto-topup-bad-wallet-id",
            "GET",
            f"{BAD_ID}/auto-topup",
            None,
            422,
            "wallet_id",
        ),
    ]
    return cases


def unknown_route_cases() -> list[Any]:
    routes = [
        ("GET", f"{W}/checkout"),
        ("PUT", f"{W}/checkout"),
        ("POST", "/v1/topups/offers"),
        ("GET", "/v1/topups"),
        ("POST", f"{W}/payments"),
        ("GET", f"{W}/payments/{{w1_payment}}"),
        ("POST", f"{W}/payments/{{w1_payment}}/invoice"),
        ("DELETE", f"{W}/auto-topup"),
        ("POST", f"{W}/auto-topup"),
        ("GET", "/v1/webhooks/stripe"),  # the webhook is another function
    ]
    return [
        case(f"unknown-route-{method}-{path}", method, path, None, 404, code="not-found")
        for method, path in routes
    ]


CASES = [
    *checkout_cases(),
    *payments_cases(),
    *invoice_cases(),
    *auto_topup_cases(),
    *unknown_route_cases(),
]


# -- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(
    module_table: str, api: Api, webhook: Callable[..., Any], table_items: Any, fake_stripe: Any
) -> dict[str, Any]:
    """Wallets w1 and w2, each with one paid checkout (see the module doc)."""
    ids: dict[str, str] = {}
    for wallet_id in ("w1", "w2"):
        assert api("PUT", f"/v1/wallets/{wallet_id}", {"plan": "free"})[0] == 201
        pi = se.new_id("pi")
        session = se.checkout_session(
            payment_intent=pi,
            wallet_id=wallet_id,
            customer=f"cus_unitFake{wallet_id}",
            invoice=None,
        )
        status, _, body = webhook(se.event("checkout.session.completed", session))
        assert (status, body["handled"]) == (200, True), body
        ids[f"{wallet_id}_payment"] = pi
    wallet = api("GET", W)
    assert wallet[0] == 200 and wallet[2]["balance"] == "550", wallet
    settings = api("GET", f"{W}/auto-topup")
    assert settings[2]["has_payment_method"] is False, settings
    return {"ids": ids, "wallet": wallet, "items": table_items()}


@pytest.mark.parametrize(("request_", "expect"), CASES)
def test_bad_input_is_refused_and_writes_nothing(
    api: Api,
    table_items: Any,
    world: dict[str, Any],
    stripe_requests: Any,
    request_: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    path = request_["path"].format(**world["ids"])
    response = api(
        request_["method"], path, request_["body"], request_["headers"] or {}, request_["query"]
    )
    check_problem(response, expect)
    # Nothing written, nothing asked of Stripe.
    assert api("GET", W) == world["wallet"]
    assert table_items() == world["items"]
    assert stripe_requests.requests == []


# -- inputs once accepted, now refused (regressions) ----------------------------------------------


def bug(name: str, method: str, path: str, body: Any, field: str, reason: str) -> Any:
    """A case that was once accepted (``reason`` says how it went wrong), now refused."""
    return case(name, method, path, body, 422, field)


LAX_BOOL = (
    "a JSON {value!r} is accepted as a boolean for {field} (pydantic lax mode: "
    "topup_models.{model}.{field} is a plain bool, while every int field there is strict=True), "
    "so {effect}"
)
KNOWN_BUGS = [
    bug(
        "checkout-save-payment-method-string",
        "POST",
        CHECKOUT,
        {**PACK, "save_payment_method": "yes"},
        "save_payment_method",
        LAX_BOOL.format(
            value="yes",
            field="save_payment_method",
            model="CheckoutIn",
            effect="a Checkout Session that saves the card is created at Stripe",
        ),
    ),
    bug(
        "checkout-save-payment-method-number",
        "POST",
        CHECKOUT,
        {**PACK, "save_payment_method": 1},
        "save_payment_method",
        LAX_BOOL.format(
            value=1,
            field="save_payment_method",
            model="CheckoutIn",
            effect="a Checkout Session that saves the card is created at Stripe",
        ),
    ),
    bug(
        "auto-topup-enabled-string",
        "PUT",
        AUTO,
        {**WITH_CARD, "enabled": "yes"},
        "enabled",
        LAX_BOOL.format(
            value="yes", field="enabled", model="AutoTopupIn", effect="auto top-up is turned on"
        ),
    ),
    bug(
        "auto-topup-enabled-string-false",
        "PUT",
        AUTO,
        {"enabled": "false"},
        "enabled",
        LAX_BOOL.format(
            value="false", field="enabled", model="AutoTopupIn", effect="settings are written"
        ),
    ),
    bug(
        "auto-topup-enabled-number",
        "PUT",
        AUTO,
        {**WITH_CARD, "enabled": 1},
        "enabled",
        LAX_BOOL.format(
            value=1, field="enabled", model="AutoTopupIn", effect="auto top-up is turned on"
        ),
    ),
    bug(
        "auto-topup-disable-with-customer-without-payment-method",
        "PUT",
        AUTO,
        {"enabled": False, "customer_id": CARD["customer_id"]},
        "payment_method_id",
        "customer_id without payment_method_id is only refused when enabling "
        "(auto_topup.py AutoTopups.set_auto_topup validates inside `if enabled:`); disabled, it "
        "answers 200 and stores customer_id with payment_method_id null, erasing a saved card",
    ),
    bug(
        "auto-topup-disable-with-unknown-pack",
        "PUT",
        AUTO,
        {"enabled": False, "pack": "pack_1", "threshold": "10"},
        "pack",
        "an unknown pack is only refused when enabling (auto_topup.py AutoTopups.set_auto_topup "
        "validates inside `if enabled:`); disabled, it answers 200 and writes the settings",
    ),
]


@pytest.mark.parametrize(("request_", "expect"), KNOWN_BUGS)
def test_once_accepted_inputs_are_refused(
    api: Api,
    fresh_table: str,
    table_items: Any,
    stripe_requests: Any,
    request_: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    # On a table of its own: these requests write today.
    assert api("PUT", W, {"plan": "free"})[0] == 201
    before = table_items()
    response = api(request_["method"], request_["path"], request_["body"])
    check_problem(response, expect)
    assert table_items() == before
    assert stripe_requests.requests == []
