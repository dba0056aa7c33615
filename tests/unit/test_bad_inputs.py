"""Bad input on every route: the right 4xx problem, never a 5xx, and nothing written.

Every case runs against one wallet ``w1`` on the free plan (50 credits), set up once for the
module, with three reservations made through the API: one open (5 credits), one released (1),
one committed (2). So the wallet has balance 48, held 5, available 43. After its bad request
each test compares ``GET /v1/wallets/w1`` and a scan of the whole table with what they showed
after the setup, which is also what they showed before the request: bad input never writes
(docs/api.md), so the cases cannot disturb one another (a case that wrote would fail itself).

The setup also makes the things the billing routes' refusals need, on other wallets and on
promo codes (never on ``w1``): codes ``WORLD10`` (redeemed by ``w2``), ``CAPPED`` (at most one
redemption, redeemed by ``w2``) and ``EXPIRED``; a keyed adjustment (``setup-adjust``) and a
keyed transfer (``setup-transfer``, to ``w3``) by ``w2``; ``w4`` referred by ``w3``; ``w5`` with
a promo grant its open reservation needs; ``w6`` with a promo grant used in part; ``w7``
anchored on the 1st.

Paths may use these placeholders:

* ``{open}``, ``{released}``, ``{committed}`` — the ids of those reservations;
* ``{forged}`` — the open reservation's key with another amount;
* ``{stranger}`` — a well-formed id that no reservation has;
* ``{monthly}`` — the id of ``w1``'s monthly allowance grant, ``{w2_monthly}`` ``w2``'s;
* ``{held_grant}``, ``{used_grant}`` — ``w5``'s and ``w6``'s promo grants.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from credit_meter.core import clock
from credit_meter.core.errors import InvalidRequest
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Store
from tests.bad_inputs import case, check_problem, names

W = "/v1/wallets/w1"
NOWHERE = "/v1/wallets/no-such-wallet"
BAD_ID = "/v1/wallets/-dash-first"


NO_CONTENT_TYPE = {"content-type": None}


# -- routes and a valid body for each -------------------------------------------------------

ROUTES: dict[str, tuple[str, str, Any]] = {
    "put-wallet": ("PUT", W, {"plan": "pro"}),
    "reserve": ("POST", f"{W}/reservations", {"feature": "chat", "credits": "1"}),
    "commit": ("POST", f"{W}/reservations/{{open}}/commit", {"credits": "1"}),
    "release": ("POST", f"{W}/reservations/{{open}}/release", None),
    "charge": ("POST", f"{W}/charges", {"feature": "chat", "credits": "1"}),
    "quote": ("POST", f"{W}/quote", {"usage": [{"meter": "app_call", "quantity": 10}]}),
    "grant": ("POST", f"{W}/grants", {"credits": "10", "source": "promo"}),
    "adjust": ("POST", f"{W}/adjustments", {"credits": "5", "reason": "goodwill"}),
    "transfer": ("POST", f"{W}/transfers", {"to_wallet_id": "w2", "credits": "1"}),
    "promo-code": ("POST", "/v1/promo-codes", {"code": "NEWCODE", "credits": "5"}),
    "redeem": ("POST", f"{W}/redeem", {"code": "WORLD10"}),
    "referral": ("POST", f"{W}/referral", {"referrer_wallet_id": "w2"}),
    "void": ("POST", f"{W}/grants/{{monthly}}/void", None),
}
# POSTs that take Idempotency-Key
KEYED = ["reserve", "commit", "release", "charge", "grant", "adjust", "transfer", "redeem"]
BODY_REQUIRED = ["put-wallet", "reserve", "charge", "quote", "grant"]
BODY_REQUIRED += ["adjust", "transfer", "promo-code", "redeem", "referral"]
NO_WALLET = {"promo-code"}  # routes without a wallet in the path

OVERSIZED = json.dumps({"feature": "chat", "credits": "1", "pad": "x" * (16 * 1024)})


# Every route reads its body through the same code (the metering function's ``_body``); it
# gets the whole table of malformed bodies on one route with a required body and one with an
# optional body, and elsewhere one of each kind of refusal: JSON that does not parse, JSON
# that is not an object, a media type that is not JSON (each route reads its body).
FULL_BODY_CHECKS = {"reserve", "commit"}
CORE = {"malformed-json", "json-array", "text-plain"}
# A body that is not UTF-8 reaches the handler base64-encoded (``isBase64Encoded``), as API
# Gateway sends it: "invalid-utf8" below.


def body_cases() -> list[Any]:
    """What is wrong with the body itself, before any field is looked at: on every route."""
    malformed = {
        "malformed-json": '{"credits": ',
        "trailing-garbage": "{} {}",
        "json-array": "[]",
        "json-array-of-object": '[{"credits": "1"}]',
        "json-string": '"free"',
        "json-number": "42",
        "json-true": "true",
        "json-null": "null",
        "bare-NaN": '{"credits": NaN}',
        "bare-Infinity": '{"credits": Infinity}',
        "bare-minus-Infinity": '{"credits": -Infinity}',
        "nested-too-deep": "[" * 5000 + "]" * 5000,
        "single-quotes": "{'credits': '1'}",
        "invalid-utf8": b'{"credits": "\xff"}',
        "utf8-bom": "\ufeff{}",
    }
    media = {
        "text-plain": ({"content-type": "text/plain"}, '{"credits": "1"}'),
        "form-urlencoded": (
            {"content-type": "application/x-www-form-urlencoded"},
            "plan=free&credits=1",
        ),
        "no-content-type": (NO_CONTENT_TYPE, '{"credits": "1"}'),
        "xml": ({"content-type": "application/xml"}, "<credits>1</credits>"),
    }
    cases = []
    for route, (method, path, _) in ROUTES.items():
        wanted = set(malformed) | set(media) if route in FULL_BODY_CHECKS else CORE
        for name, raw in malformed.items():
            if name in wanted:
                cases.append(case(f"{route}-{name}", method, path, raw, 400))
        for name, (headers, raw) in media.items():
            if name in wanted:
                cases.append(case(f"{route}-{name}", method, path, raw, 415, headers=headers))
        cases.append(case(f"{route}-oversized", method, path, OVERSIZED, 413))
        if route in BODY_REQUIRED:
            cases.append(case(f"{route}-empty-body", method, path, None, 400))
            cases.append(case(f"{route}-blank-body", method, path, "  \n", 400))
    return cases


def wallet_cases() -> list[Any]:
    """An unknown or malformed wallet id with an otherwise valid request."""
    cases = [
        case("get-wallet-unknown", "GET", NOWHERE, None, 404),
        case("get-wallet-dash-first", "GET", BAD_ID, None, 422, "wallet_id"),
        case("get-wallet-too-long", "GET", "/v1/wallets/" + "w" * 129, None, 422, "wallet_id"),
        case("get-wallet-space", "GET", "/v1/wallets/a b", None, 422, "wallet_id"),
        case("get-wallet-percent", "GET", "/v1/wallets/a%2Fb", None, 422, "wallet_id"),
        case("get-wallet-non-ascii", "GET", "/v1/wallets/wället", None, 422, "wallet_id"),
        case("transactions-unknown-wallet", "GET", f"{NOWHERE}/transactions", None, 404),
        case("transactions-bad-wallet", "GET", f"{BAD_ID}/transactions", None, 422, "wallet_id"),
        case("grants-unknown-wallet", "GET", f"{NOWHERE}/grants", None, 404),
        case("grants-bad-wallet", "GET", f"{BAD_ID}/grants", None, 422, "wallet_id"),
    ]
    for route, (method, path, body) in ROUTES.items():
        if route in NO_WALLET:
            continue
        bad = path.replace(W, BAD_ID)
        cases.append(case(f"{route}-bad-wallet-id", method, bad, body, 422, "wallet_id"))
        if route != "put-wallet":  # a PUT to an unknown wallet creates it
            cases.append(
                case(f"{route}-unknown-wallet", method, path.replace(W, NOWHERE), body, 404)
            )
    return cases


# Every keyed route reads the header through the same check (the metering function's
# ``_request``): every bad key on one route, and on each other route one (a header injection).
FULL_KEY_CHECKS = "reserve"
CORE_KEY = "newline"


def idempotency_key_cases() -> list[Any]:
    keys = {
        "too-long": "k" * 256,
        "control-char": "key\x01",
        "newline": "key\nX-Injected: 1",
        "trailing-newline": "key\n",
        "space": "my key",
        "non-ascii": "clé",
        "empty": "",
    }
    return [
        case(
            f"{route}-idempotency-key-{name}",
            ROUTES[route][0],
            ROUTES[route][1],
            ROUTES[route][2],
            422,
            "Idempotency-Key",
            headers={"Idempotency-Key": key},
        )
        for route in KEYED
        for name, key in keys.items()
        if route == FULL_KEY_CHECKS or name == CORE_KEY
    ]


# Field problems shared by the two routes that take ``{feature, member_id?, credits?|usage?}``.
TOKENS = {"meter": "input_tokens", "quantity": 1500}
COSTED_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    # name: (body, offending field)
    "feature-missing": ({"credits": "1"}, "feature"),
    "feature-number": ({"feature": 7, "credits": "1"}, "feature"),
    "feature-empty": ({"feature": "", "credits": "1"}, "feature"),
    "feature-space": ({"feature": "chat room", "credits": "1"}, "feature"),
    "feature-too-long": ({"feature": "f" * 65, "credits": "1"}, "feature"),
    "feature-null": ({"feature": None, "credits": "1"}, "feature"),
    "member-id-number": ({"feature": "chat", "member_id": 5, "credits": "1"}, "member_id"),
    "member-id-empty": ({"feature": "chat", "member_id": "", "credits": "1"}, "member_id"),
    "credits-bool": ({"feature": "chat", "credits": True}, "credits"),
    "credits-list": ({"feature": "chat", "credits": [1]}, "credits"),
    "credits-object": ({"feature": "chat", "credits": {"amount": 1}}, "credits"),
    "credits-empty-string": ({"feature": "chat", "credits": ""}, "credits"),
    "credits-words": ({"feature": "chat", "credits": "ten"}, "credits"),
    "credits-zero": ({"feature": "chat", "credits": 0}, "credits"),
    "credits-zero-string": ({"feature": "chat", "credits": "0.000000"}, "credits"),
    "credits-negative": ({"feature": "chat", "credits": -1}, "credits"),
    "credits-negative-string": ({"feature": "chat", "credits": "-0.5"}, "credits"),
    "credits-7-decimals": ({"feature": "chat", "credits": "0.1234567"}, "credits"),
    "credits-7-decimals-number": ('{"feature": "chat", "credits": 0.1234567}', "credits"),
    "credits-tiny-exponent": ({"feature": "chat", "credits": "1e-7"}, "credits"),
    "credits-1e30": ({"feature": "chat", "credits": "1e30"}, "credits"),
    "credits-1e30-number": ('{"feature": "chat", "credits": 1e30}', "credits"),
    "credits-14-digits": ({"feature": "chat", "credits": "99999999999999"}, "credits"),
    "credits-NaN-string": ({"feature": "chat", "credits": "NaN"}, "credits"),
    "credits-sNaN-string": ({"feature": "chat", "credits": "sNaN"}, "credits"),
    "credits-Infinity-string": ({"feature": "chat", "credits": "Infinity"}, "credits"),
    "credits-minus-Infinity-string": ({"feature": "chat", "credits": "-Infinity"}, "credits"),
    "credits-exponent-string": ({"feature": "chat", "credits": "1e1"}, "credits"),
    "credits-plus-sign": ({"feature": "chat", "credits": "+1"}, "credits"),
    "credits-padded-with-spaces": ({"feature": "chat", "credits": " 1 "}, "credits"),
    "credits-trailing-newline": ({"feature": "chat", "credits": "1\n"}, "credits"),
    "credits-leading-dot": ({"feature": "chat", "credits": ".5"}, "credits"),
    "credits-underscore": ({"feature": "chat", "credits": "1_000"}, "credits"),
    "credits-non-ascii-digit": ({"feature": "chat", "credits": "\u0661"}, "credits"),
    "credits-and-usage": (
        {"feature": "chat", "credits": "1", "usage": [{"meter": "app_call", "quantity": 1}]},
        "usage",
    ),
    "neither-credits-nor-usage": ({"feature": "chat"}, "credits"),
    "credits-null": ({"feature": "chat", "credits": None}, "credits"),
    "usage-empty": ({"feature": "chat", "usage": []}, "usage"),
    "usage-object": ({"feature": "chat", "usage": {"meter": "app_call"}}, "usage"),
    "usage-too-many-lines": (
        {"feature": "chat", "usage": [{"meter": "app_call", "quantity": 1}] * 101},
        "usage",
    ),
    "usage-unknown-meter": (
        {"feature": "chat", "usage": [{"meter": "teleport", "quantity": 1}]},
        "usage.0.meter",
    ),
    "usage-token-meter-without-model": ({"feature": "chat", "usage": [TOKENS]}, "usage.0.model"),
    "usage-unknown-model": (
        {"feature": "chat", "usage": [{**TOKENS, "model": "gpt-99"}]},
        "usage.0.model",
    ),
    "usage-model-on-unit-meter": (
        {"feature": "chat", "usage": [{"meter": "image_hd", "quantity": 1, "model": "o3"}]},
        "usage.0.model",
    ),
    "usage-second-line-unknown-meter": (
        {
            "feature": "chat",
            "usage": [{"meter": "app_call", "quantity": 1}, {"meter": "nope", "quantity": 1}],
        },
        "usage.1.meter",
    ),
    "usage-quantity-zero": (
        {"feature": "chat", "usage": [{"meter": "app_call", "quantity": 0}]},
        "usage.0.quantity",
    ),
    "usage-quantity-missing": (
        {"feature": "chat", "usage": [{"meter": "app_call"}]},
        "usage.0.quantity",
    ),
    "usage-quantity-bool": (
        {"feature": "chat", "usage": [{"meter": "app_call", "quantity": True}]},
        "usage.0.quantity",
    ),
    "usage-meter-number": (
        {"feature": "chat", "usage": [{"meter": 5, "quantity": 1}]},
        "usage.0.meter",
    ),
    "usage-line-extra-field": (
        {"feature": "chat", "usage": [{"meter": "app_call", "quantity": 1, "unit": "x"}]},
        "usage.0.unit",
    ),
    "extra-field": ({"feature": "chat", "credits": "1", "colour": "red"}, "colour"),
}

# ChargeIn and ReserveIn share their cost's validation (api/models.py: ``_Required``) and the
# ``Name`` type of feature and member_id: the whole table runs on reserve, and on charge one
# case for each of its fields and each check of the cost as a whole.
CHARGE_SAMPLE = (
    "feature-missing",
    "member-id-number",
    "credits-words",
    "credits-and-usage",
    "neither-credits-nor-usage",
    "usage-unknown-meter",
    "extra-field",
)

RESERVE_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    f"expires-in-{name}": (
        {"feature": "chat", "credits": "1", "expires_in_seconds": value},
        "expires_in_seconds",
    )
    for name, value in {
        "zero": 0,
        "negative": -1,
        "over-a-day": 86401,
        "string": "60",
        "fraction": 1.5,
        "bool": True,
    }.items()
}

COMMIT_FIELDS: dict[str, tuple[Any, str]] = {
    "credits-negative": ({"credits": -1}, "credits"),
    "credits-words": ({"credits": "abc"}, "credits"),
    "credits-bool": ({"credits": False}, "credits"),
    "credits-7-decimals": ({"credits": "0.1234567"}, "credits"),
    "credits-NaN-string": ({"credits": "NaN"}, "credits"),
    "credits-huge": ({"credits": "1e30"}, "credits"),
    "credits-huge-plain": ({"credits": "1000000000000000000000000000000"}, "credits"),
    "credits-plus-sign": ({"credits": "+1"}, "credits"),
    "credits-and-usage": (
        {"credits": "1", "usage": [{"meter": "app_call", "quantity": 1}]},
        "usage",
    ),
    "usage-empty": ({"usage": []}, "usage"),
    "usage-unknown-meter": ({"usage": [{"meter": "teleport", "quantity": 1}]}, "usage.0.meter"),
    "usage-token-meter-without-model": ({"usage": [TOKENS]}, "usage.0.model"),
    "feature-not-allowed": ({"feature": "chat"}, "feature"),
    "extra-field": ({"credits": "1", "reason": "done"}, "reason"),
}

RELEASE_FIELDS: dict[str, tuple[Any, str]] = {
    "with-credits": ({"credits": "1"}, "credits"),
    "with-usage": ({"usage": [{"meter": "app_call", "quantity": 1}]}, "usage"),
    "extra-field": ({"reason": "failed"}, "reason"),
}

QUOTE_FIELDS: dict[str, tuple[Any, str]] = {
    "usage-missing": ({}, "usage"),
    "credits-instead": ({"credits": "1"}, "credits"),
    "usage-empty": ({"usage": []}, "usage"),
    "usage-string": ({"usage": "app_call"}, "usage"),
    "usage-unknown-meter": ({"usage": [{"meter": "teleport", "quantity": 1}]}, "usage.0.meter"),
    "usage-unknown-model": ({"usage": [{**TOKENS, "model": "gpt-99"}]}, "usage.0.model"),
    "usage-quantity-negative": (
        {"usage": [{"meter": "app_call", "quantity": -3}]},
        "usage.0.quantity",
    ),
    "usage-quantity-NaN": (
        {"usage": [{"meter": "app_call", "quantity": "NaN"}]},
        "usage.0.quantity",
    ),
}

GRANT_FIELDS: dict[str, tuple[Any, str]] = {
    "credits-missing": ({"source": "promo"}, "credits"),
    "source-missing": ({"credits": "10"}, "source"),
    "source-unknown": ({"credits": "10", "source": "gift"}, "source"),
    "source-number": ({"credits": "10", "source": 1}, "source"),
    # only the service grants these
    "source-monthly": ({"credits": "10", "source": "monthly"}, "source"),
    "source-rollover": ({"credits": "10", "source": "rollover"}, "source"),
    "source-transfer": ({"credits": "10", "source": "transfer"}, "source"),
    "credits-zero": ({"credits": "0", "source": "promo"}, "credits"),
    "credits-negative": ({"credits": -10, "source": "promo"}, "credits"),
    "credits-Infinity-string": ({"credits": "Infinity", "source": "promo"}, "credits"),
    "credits-7-decimals": ({"credits": "0.0000001", "source": "promo"}, "credits"),
    "credits-huge": ({"credits": "99999999999999", "source": "promo"}, "credits"),
    "credits-comma": ({"credits": "1,5", "source": "promo"}, "credits"),
    "expires-at-past": (
        {"credits": "10", "source": "promo", "expires_at": "2000-01-01T00:00:00Z"},
        "expires_at",
    ),
    "expires-at-epoch-zero": ({"credits": "10", "source": "promo", "expires_at": 0}, "expires_at"),
    "expires-at-naive": (
        {"credits": "10", "source": "promo", "expires_at": "2099-01-01T00:00:00"},
        "expires_at",
    ),
    "expires-at-words": (
        {"credits": "10", "source": "promo", "expires_at": "next week"},
        "expires_at",
    ),
    "expires-at-over-100-years": (
        {"credits": "10", "source": "promo", "expires_at": "2200-01-01T00:00:00Z"},
        "expires_at",
    ),
    "expires-at-year-9999": (
        {"credits": "10", "source": "promo", "expires_at": "9999-12-31T00:00:00Z"},
        "expires_at",
    ),
    "expires-at-after-year-9999-in-utc": (
        {"credits": "10", "source": "promo", "expires_at": "9999-12-31T23:59:59-05:00"},
        "expires_at",
    ),
    "priority-negative": ({"credits": "10", "source": "promo", "priority": -1}, "priority"),
    "priority-too-big": ({"credits": "10", "source": "promo", "priority": 1001}, "priority"),
    "priority-string": ({"credits": "10", "source": "promo", "priority": "5"}, "priority"),
    "priority-bool": ({"credits": "10", "source": "promo", "priority": True}, "priority"),
    "extra-field": ({"credits": "10", "source": "promo", "note": "hi"}, "note"),
}

AMOUNT_PROBLEMS: dict[str, Any] = {
    # a positive amount that is not one: shared by the billing routes' tables below
    "zero": "0",
    "zero-number": 0,
    "negative": "-1",
    "7-decimals": "1.0000001",
    "huge": "99999999999999",
    "words": "five",
    "bool": True,
    "list": [5],
    "null": None,
    "NaN-string": "NaN",
    "Infinity-string": "Infinity",
    "exponent-string": "5e0",
    "plus-sign": "+5",
}


def amount_cases(valid: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, str]]:
    return {
        f"credits-{name}": ({**valid, "credits": value}, "credits")
        for name, value in AMOUNT_PROBLEMS.items()
        if name not in skip
    }


TOO_LONG_REASON = "r" * 201

ADJUST_FIELDS: dict[str, tuple[Any, str]] = {
    "credits-missing": ({"reason": "goodwill"}, "credits"),
    # negative adjustments are allowed; zero, imprecise and huge ones are not
    **amount_cases({"reason": "goodwill"}, skip=("negative",)),
    "credits-negative-zero": ({"credits": "-0.000000", "reason": "goodwill"}, "credits"),
    "credits-negative-7-decimals": ({"credits": "-0.0000001", "reason": "goodwill"}, "credits"),
    "credits-negative-huge": ({"credits": "-99999999999999", "reason": "goodwill"}, "credits"),
    "reason-missing": ({"credits": "5"}, "reason"),
    "reason-empty": ({"credits": "5", "reason": ""}, "reason"),
    "reason-too-long": ({"credits": "5", "reason": TOO_LONG_REASON}, "reason"),
    "reason-number": ({"credits": "5", "reason": 5}, "reason"),
    "reason-null": ({"credits": "5", "reason": None}, "reason"),
    "reason-list": ({"credits": "5", "reason": ["goodwill"]}, "reason"),
    "extra-field": ({"credits": "5", "reason": "goodwill", "source": "promo"}, "source"),
}

TRANSFER_FIELDS: dict[str, tuple[Any, str]] = {
    "to-wallet-missing": ({"credits": "1"}, "to_wallet_id"),
    "to-wallet-number": ({"to_wallet_id": 2, "credits": "1"}, "to_wallet_id"),
    "to-wallet-empty": ({"to_wallet_id": "", "credits": "1"}, "to_wallet_id"),
    "to-wallet-null": ({"to_wallet_id": None, "credits": "1"}, "to_wallet_id"),
    "to-wallet-dash-first": ({"to_wallet_id": "-w2", "credits": "1"}, "to_wallet_id"),
    "to-wallet-space": ({"to_wallet_id": "w 2", "credits": "1"}, "to_wallet_id"),
    "to-wallet-slash": ({"to_wallet_id": "w/2", "credits": "1"}, "to_wallet_id"),
    "to-wallet-too-long": ({"to_wallet_id": "w" * 129, "credits": "1"}, "to_wallet_id"),
    "to-wallet-itself": ({"to_wallet_id": "w1", "credits": "1"}, "to_wallet_id"),
    "credits-missing": ({"to_wallet_id": "w2"}, "credits"),
    **amount_cases({"to_wallet_id": "w2"}),
    "reason-empty": ({"to_wallet_id": "w2", "credits": "1", "reason": ""}, "reason"),
    "reason-too-long": (
        {"to_wallet_id": "w2", "credits": "1", "reason": TOO_LONG_REASON},
        "reason",
    ),
    "reason-number": ({"to_wallet_id": "w2", "credits": "1", "reason": 1}, "reason"),
    "extra-field": (
        {"to_wallet_id": "w2", "credits": "1", "from_wallet_id": "w1"},
        "from_wallet_id",
    ),
}

NEW_CODE = {"code": "NEWCODE", "credits": "5"}
PROMO_FIELDS: dict[str, tuple[Any, str]] = {
    **{
        f"code-{name}": ({**NEW_CODE, "code": value}, "code")
        for name, value in {
            "too-short": "AB",
            "too-long": "C" * 33,
            "space": "NEW CODE",
            "symbol": "NEW!",
            "percent": "NEW%20",
            "leading-dash": "-NEW",
            "leading-underscore": "_NEW",
            "non-ascii": "ÉTÉ26",
            "number": 12345,
            "null": None,
            "list": ["NEWCODE"],
        }.items()
    },
    "code-missing": ({"credits": "5"}, "code"),
    "credits-missing": ({"code": "NEWCODE"}, "credits"),
    **amount_cases({"code": "NEWCODE"}),
    "expires-at-past": ({**NEW_CODE, "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    "expires-at-naive": ({**NEW_CODE, "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    "expires-at-words": ({**NEW_CODE, "expires_at": "next week"}, "expires_at"),
    "expires-at-over-100-years": (
        {**NEW_CODE, "expires_at": "2200-01-01T00:00:00Z"},
        "expires_at",
    ),
    "credits-expire-at-past": (
        {**NEW_CODE, "credits_expire_at": "2000-01-01T00:00:00Z"},
        "credits_expire_at",
    ),
    "credits-expire-at-naive": (
        {**NEW_CODE, "credits_expire_at": "2099-01-01T00:00:00"},
        "credits_expire_at",
    ),
    "credits-expire-at-over-100-years": (
        {**NEW_CODE, "credits_expire_at": "2200-01-01T00:00:00Z"},
        "credits_expire_at",
    ),
    **{
        f"credits-expire-in-days-{name}": (
            {**NEW_CODE, "credits_expire_in_days": value},
            "credits_expire_in_days",
        )
        for name, value in {
            "zero": 0,
            "negative": -1,
            "over-ten-years": 3651,
            "string": "7",
            "fraction": 1.5,
            "bool": True,
        }.items()
    },
    "both-credit-expiries": (
        {
            **NEW_CODE,
            "credits_expire_at": "2099-01-01T00:00:00Z",
            "credits_expire_in_days": 7,
        },
        "credits_expire_in_days",
    ),
    **{
        f"max-redemptions-{name}": ({**NEW_CODE, "max_redemptions": value}, "max_redemptions")
        for name, value in {
            "zero": 0,
            "negative": -5,
            "too-many": 10_000_001,
            "string": "10",
            "fraction": 2.5,
            "bool": True,
        }.items()
    },
    "extra-field": ({**NEW_CODE, "owner": "marketing"}, "owner"),
}

REDEEM_FIELDS: dict[str, tuple[Any, str]] = {
    "code-missing": ({}, "code"),
    "code-too-short": ({"code": "AB"}, "code"),
    "code-too-long": ({"code": "W" * 33}, "code"),
    "code-space": ({"code": "WORLD 10"}, "code"),
    "code-symbol": ({"code": "WORLD10!"}, "code"),
    "code-padded": ({"code": " WORLD10"}, "code"),
    "code-number": ({"code": 10}, "code"),
    "code-null": ({"code": None}, "code"),
    "extra-field": ({"code": "WORLD10", "wallet_id": "w1"}, "wallet_id"),
}

REFERRAL_FIELDS: dict[str, tuple[Any, str]] = {
    "referrer-missing": ({}, "referrer_wallet_id"),
    "referrer-number": ({"referrer_wallet_id": 2}, "referrer_wallet_id"),
    "referrer-empty": ({"referrer_wallet_id": ""}, "referrer_wallet_id"),
    "referrer-null": ({"referrer_wallet_id": None}, "referrer_wallet_id"),
    "referrer-dash-first": ({"referrer_wallet_id": "-w2"}, "referrer_wallet_id"),
    "referrer-too-long": ({"referrer_wallet_id": "w" * 129}, "referrer_wallet_id"),
    "referrer-itself": ({"referrer_wallet_id": "w1"}, "referrer_wallet_id"),
    "extra-field": ({"referrer_wallet_id": "w2", "credits": "500"}, "credits"),
}

VOID_FIELDS: dict[str, tuple[Any, str]] = {
    "with-credits": ({"credits": "1"}, "credits"),
    "with-reason": ({"reason": "mistake"}, "reason"),
}

PUT_FIELDS: dict[str, tuple[Any, str]] = {
    "plan-missing": ({}, "plan"),
    "plan-number": ({"plan": 5}, "plan"),
    "plan-empty": ({"plan": ""}, "plan"),
    "plan-unknown": ({"plan": "platinum"}, "plan"),
    "allowance-on-fixed-plan": ({"plan": "pro", "allowance": "10"}, "allowance"),
    "enterprise-without-allowance": ({"plan": "enterprise"}, "allowance"),
    "allowance-negative": ({"plan": "enterprise", "allowance": "-1"}, "allowance"),
    "allowance-NaN": ({"plan": "enterprise", "allowance": "NaN"}, "allowance"),
    "extra-field": ({"plan": "pro", "owner": "me"}, "owner"),
    **{
        f"anchor-day-{name}": ({"plan": "pro", "anchor_day": value}, "anchor_day")
        for name, value in {
            "zero": 0,
            "32": 32,
            "negative": -1,
            "words": "x",
            "string": "5",
            "fraction": 1.5,
            "fraction-string": "1.5",
            "bool": True,
            "list": [1],
        }.items()
    },
}


def field_cases() -> list[Any]:
    tables: list[tuple[str, dict[str, tuple[Any, str]]]] = [
        ("put-wallet", PUT_FIELDS),
        ("reserve", {**COSTED_FIELDS, **RESERVE_FIELDS}),
        ("commit", COMMIT_FIELDS),
        ("release", RELEASE_FIELDS),
        (
            "charge",
            {
                **{name: COSTED_FIELDS[name] for name in CHARGE_SAMPLE},
                "expires-in-not-allowed": (
                    {"feature": "chat", "credits": "1", "expires_in_seconds": 60},
                    "expires_in_seconds",
                ),
            },
        ),
        ("quote", QUOTE_FIELDS),
        ("grant", GRANT_FIELDS),
        ("adjust", ADJUST_FIELDS),
        ("transfer", TRANSFER_FIELDS),
        ("promo-code", PROMO_FIELDS),
        ("redeem", REDEEM_FIELDS),
        ("referral", REFERRAL_FIELDS),
        ("void", VOID_FIELDS),
    ]
    return [
        case(f"{route}-{name}", ROUTES[route][0], ROUTES[route][1], body, 422, field)
        for route, table in tables
        for name, (body, field) in table.items()
    ]


HUGE_PRECISE = "10000000000000000000000000.1234567"  # > 10^12 and 7 fractional digits


def huge_precise_amount_cases() -> list[Any]:
    """Huge amounts with too many fractional digits, as a string and as a JSON number: the size
    is checked first (quantizing a number this large to six digits would fail)."""
    bodies = {
        "reserve": ("credits", '{{"feature": "chat", "credits": {}}}'),
        "charge": ("credits", '{{"feature": "chat", "credits": {}}}'),
        "commit": ("credits", '{{"credits": {}}}'),
        "grant": ("credits", '{{"source": "promo", "credits": {}}}'),
        "adjust": ("credits", '{{"reason": "r", "credits": {}}}'),
        "transfer": ("credits", '{{"to_wallet_id": "w2", "credits": {}}}'),
        "promo-code": ("credits", '{{"code": "NEWCODE", "credits": {}}}'),
        "quote": ("usage.0.quantity", '{{"usage": [{{"meter": "app_call", "quantity": {}}}]}}'),
    }
    return [
        case(
            f"{route}-huge-amount-with-7-decimals-as-{kind}",
            ROUTES[route][0],
            ROUTES[route][1],
            template.format(literal),
            422,
            field,
        )
        for route, (field, template) in bodies.items()
        for kind, literal in {"string": f'"{HUGE_PRECISE}"', "number": HUGE_PRECISE}.items()
    ]


def state_cases() -> list[Any]:
    """Requests that are well formed but refer to the wrong thing, or ask too much."""
    hold = f"{W}/reservations"
    return [
        case(
            "reserve-more-than-available",
            "POST",
            hold,
            {"feature": "chat", "credits": "43.01"},
            402,
        ),
        case(
            "reserve-usage-more-than-available",
            "POST",
            hold,
            {"feature": "img", "usage": [{"meter": "image_hd", "quantity": 6}]},
            402,
        ),
        case(
            "reserve-key-reused-with-other-body",
            "POST",
            hold,
            {"feature": "chat", "credits": "6"},
            409,
            headers={"Idempotency-Key": "setup-open"},
            code="idempotency-key-reused",
        ),
        case(
            "charge-more-than-available",
            "POST",
            f"{W}/charges",
            {"feature": "chat", "credits": 44},
            402,
        ),
        *[
            case(
                f"{action}-{name}",
                "POST",
                f"{hold}/{rid}/{action}",
                None,
                404,
                code="reservation-not-found",
            )
            for action in ("commit", "release")
            for name, rid in {
                "stranger-reservation": "{stranger}",
                "forged-amount": "{forged}",
                "malformed-reservation-id": "not-a-reservation",
                "reservation-id-uppercase": "{OPEN}",
            }.items()
        ],
        case(
            "commit-released-reservation",
            "POST",
            f"{hold}/{{released}}/commit",
            None,
            409,
            code="reservation-released",
        ),
        case(
            "release-committed-reservation",
            "POST",
            f"{hold}/{{committed}}/release",
            None,
            409,
            code="reservation-committed",
        ),
        case(
            "commit-committed-with-other-amount",
            "POST",
            f"{hold}/{{committed}}/commit",
            {"credits": "1"},
            409,
            code="reservation-committed",
        ),
        case(
            "commit-committed-with-other-amount-and-key",
            "POST",
            f"{hold}/{{committed}}/commit",
            {"credits": "1"},
            409,
            headers={"Idempotency-Key": "setup-committed"},
            code="reservation-committed",
        ),
        case(
            "commit-reservation-of-another-wallet",
            "POST",
            "/v1/wallets/w2/reservations/{open}/commit",
            None,
            404,
            code="reservation-not-found",
        ),
        *billing_state_cases(),
    ]


def billing_state_cases() -> list[Any]:
    """The billing routes' refusals of well-formed requests (see the module doc's setup)."""
    void = f"{W}/grants/{{}}/void"
    return [
        case(
            "put-wallet-anchor-day-changed",
            "PUT",
            "/v1/wallets/w7",
            {"plan": "free", "anchor_day": 2},
            422,
            "anchor_day",
        ),
        case(
            "put-wallet-anchor-day-changed-with-an-upgrade",
            "PUT",
            "/v1/wallets/w7",
            {"plan": "pro", "anchor_day": 31},
            422,
            "anchor_day",
        ),
        case(
            "adjust-key-reused-with-other-body",
            "POST",
            "/v1/wallets/w2/adjustments",
            {"credits": "2", "reason": "setup"},
            409,
            headers={"Idempotency-Key": "setup-adjust"},
            code="idempotency-key-reused",
        ),
        case(
            "transfer-more-than-available",
            "POST",
            f"{W}/transfers",
            {"to_wallet_id": "w2", "credits": "43.01"},
            402,
        ),
        case(
            "transfer-to-unknown-wallet",
            "POST",
            f"{W}/transfers",
            {"to_wallet_id": "no-such-wallet", "credits": "1"},
            404,
        ),
        case(
            "transfer-key-reused-with-other-body",
            "POST",
            "/v1/wallets/w2/transfers",
            {"to_wallet_id": "w3", "credits": "2"},
            409,
            headers={"Idempotency-Key": "setup-transfer"},
            code="idempotency-key-reused",
        ),
        case(
            "promo-code-taken-with-another-definition",
            "POST",
            "/v1/promo-codes",
            {"code": "world10", "credits": "11"},
            409,
            code="promo-code-exists",
        ),
        case(
            "redeem-unknown-code",
            "POST",
            f"{W}/redeem",
            {"code": "NOSUCHCODE"},
            404,
            code="promo-code-not-found",
        ),
        case(  # the wallet is looked up first: for another organisation's it is the same
            "redeem-unknown-code-unknown-wallet",
            "POST",
            f"{NOWHERE}/redeem",
            {"code": "NOSUCHCODE"},
            404,
            code="wallet-not-found",
        ),
        case(
            "redeem-again",
            "POST",
            "/v1/wallets/w2/redeem",
            {"code": "world10"},
            409,
            code="promo-code-already-redeemed",
        ),
        case(
            "redeem-exhausted",
            "POST",
            f"{W}/redeem",
            {"code": "CAPPED"},
            409,
            code="promo-code-exhausted",
        ),
        case(
            "redeem-expired",
            "POST",
            f"{W}/redeem",
            {"code": "EXPIRED"},
            409,
            code="promo-code-expired",
        ),
        case(
            "referral-unknown-referrer",
            "POST",
            f"{W}/referral",
            {"referrer_wallet_id": "no-such-wallet"},
            404,
        ),
        case(
            "referral-by-its-own-referee",
            "POST",
            "/v1/wallets/w3/referral",
            {"referrer_wallet_id": "w4"},
            422,
            "referrer_wallet_id",
        ),
        case(
            "referral-already-referred",
            "POST",
            "/v1/wallets/w4/referral",
            {"referrer_wallet_id": "w2"},
            409,
            code="already-referred",
        ),
        case(
            "void-monthly-allowance",
            "POST",
            void.format("{monthly}"),
            None,
            409,
            code="grant-not-voidable",
        ),
        case(
            "void-grant-held-by-a-reservation",
            "POST",
            "/v1/wallets/w5/grants/{held_grant}/void",
            None,
            409,
            code="grant-in-use",
        ),
        case(
            "void-grant-used-in-part",
            "POST",
            "/v1/wallets/w6/grants/{used_grant}/void",
            None,
            409,
            code="grant-in-use",
        ),
        *[
            case(
                f"void-{name}",
                "POST",
                void.format(grant_id),
                None,
                404,
                code="grant-not-found",
            )
            for name, grant_id in {
                "stranger-grant": "grt_" + "0" * 23,
                "grant-of-another-wallet": "{w2_monthly}",
                "grant-of-another-wallet-on-its-path": "{held_grant}",
                "malformed-grant-id": "not-a-grant",
                "grant-id-too-short": "grt_123",
                "grant-id-too-long": "grt_" + "0" * 24,
                "grant-id-uppercase": "GRT_" + "0" * 23,
                "grant-id-non-hex": "grt_" + "g" * 23,
                "reservation-id": "{open}",
            }.items()
        ],
        case(
            "void-unknown-grant-of-unknown-wallet",
            "POST",
            f"{NOWHERE}/grants/grt_{'0' * 23}/void",
            None,
            404,
        ),
    ]


def query_cases() -> list[Any]:
    return [*list_query_cases("transactions"), *list_query_cases("grants")]


# Every list pages with the same model (api/models.py: ``PageQuery``): the whole table of bad
# limits on the transactions list, on the others one below the range and one not a number.
# Each list's cursors are its own (keys of another list are refused), so all are kept.
LIMIT_SAMPLE = ("zero", "abc")


def list_query_cases(listing: str) -> list[Any]:
    """The paging parameters of a list (``transactions`` or ``grants``)."""
    path = f"{W}/{listing}"
    bad_limits = {
        "zero": "0",
        "101": "101",
        "abc": "abc",
        "negative": "-1",
        "fraction": "1.5",
        "empty": "",
    }
    if listing != "transactions":  # the same paging model (PageQuery): a sample
        bad_limits = {k: v for k, v in bad_limits.items() if k in LIMIT_SAMPLE}
    bad_cursors = {
        "garbage": "!!!not-a-cursor!!!",
        "empty": "",
        "not-an-entry-key": "Vw",  # base64url of "W": the wallet item's sort key
        "record-key": "UiNIMTIz",  # base64url of "R#H123": an operation record
        "too-long": "A" * 201,
        # a cursor of the other list: "G#grt_000..." for transactions, "T#000000000009" for grants
        "of-the-other-list": (
            "RyNncnRfMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA"
            if listing == "transactions"
            else "VCMwMDAwMDAwMDAwMDk"
        ),
    }
    return [
        *[
            case(
                f"{listing}-limit-{name}",
                "GET",
                path,
                None,
                422,
                "limit",
                query=f"limit={value}",
            )
            for name, value in bad_limits.items()
        ],
        *[
            case(
                f"{listing}-cursor-{name}",
                "GET",
                path,
                None,
                422,
                "cursor",
                query=f"cursor={value}",
            )
            for name, value in bad_cursors.items()
        ],
        case(f"{listing}-unknown-parameter", "GET", path, None, 422, "page", query="page=2"),
        case(
            f"{listing}-unknown-wallet-with-cursor",
            "GET",
            f"{NOWHERE}/{listing}",
            None,
            404,
            # base64url of "T#000000000009" / "G#x"
            query="cursor=" + ("VCMwMDAwMDAwMDAwMDk" if listing == "transactions" else "RyN4"),
        ),
    ]


def unknown_route_cases() -> list[Any]:
    routes = [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v1/wallets"),
        ("POST", "/v1/wallets"),
        ("GET", "/v1/wallets/w1/"),
        ("DELETE", "/v1/wallets/w1"),
        ("PATCH", "/v1/wallets/w1"),
        ("POST", "/v1/wallets/w1"),
        ("GET", "/v1/wallets/w1/reservations"),
        ("GET", "/v1/wallets/w1/reservations/{open}"),
        ("POST", "/v1/wallets/w1/reservations/{open}"),
        ("POST", "/v1/wallets/w1/reservations/{open}/cancel"),
        ("PUT", "/v1/wallets/w1/reservations/{open}/commit"),
        ("POST", "/v1/wallets/w1/refunds"),
        ("GET", "/v1/wallets/w1/charges"),
        ("POST", "/v1/wallets/w1/transactions"),
        ("POST", "/v1/prices"),
        ("GET", "/v1/prices/input_tokens"),
        ("GET", "/v2/prices"),
        ("GET", "/V1/PRICES"),
        ("GET", "/v1/promo-codes"),
        ("GET", "/v1/promo-codes/WORLD10"),
        ("PUT", "/v1/promo-codes"),
        ("POST", "/v1/promo-codes/WORLD10/redeem"),
        ("PUT", "/v1/wallets/w1/grants"),
        ("GET", "/v1/wallets/w1/grants/{monthly}"),
        ("POST", "/v1/wallets/w1/grants/{monthly}"),
        ("DELETE", "/v1/wallets/w1/grants/{monthly}"),
        ("GET", "/v1/wallets/w1/grants/{monthly}/void"),
        ("POST", "/v1/wallets/w1/grants/void"),
        ("GET", "/v1/wallets/w1/redeem"),
        ("GET", "/v1/wallets/w1/referral"),
        ("GET", "/v1/wallets/w1/adjustments"),
        ("GET", "/v1/wallets/w1/transfers"),
        ("POST", "/v1/wallets/w1/transfers/w2"),
    ]
    return [
        case(f"unknown-route-{method}-{path}", method, path, None, 404, code="not-found")
        for method, path in routes
    ]


CASES = [
    *body_cases(),
    *wallet_cases(),
    *idempotency_key_cases(),
    *field_cases(),
    *huge_precise_amount_cases(),
    *state_cases(),
    *query_cases(),
    *unknown_route_cases(),
]


# -- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(module_table: str, api: Any, table_items: Any) -> dict[str, Any]:
    """Wallet w1 with an open, a released and a committed reservation (see the module doc),
    and what ``GET /v1/wallets/w1`` and a table scan show then."""
    assert api("PUT", W, {"plan": "free"})[0] == 201
    assert api("PUT", "/v1/wallets/w2", {"plan": "free"})[0] == 201

    def reserve(key: str, credits: str) -> str:
        status, _, body = api(
            "POST",
            f"{W}/reservations",
            {"feature": "chat", "credits": credits},
            {"Idempotency-Key": key},
        )
        assert status == 201, body
        return str(body["reservation_id"])

    rids = {
        "open": reserve("setup-open", "5"),
        "released": reserve("setup-released", "1"),
        "committed": reserve("setup-committed", "2"),
    }
    assert api("POST", f"{W}/reservations/{rids['released']}/release")[0] == 200
    assert api("POST", f"{W}/reservations/{rids['committed']}/commit")[0] == 200
    prefix, key, amount = rids["open"].split("_")
    rids["forged"] = f"{prefix}_{key}_{'1' + amount}"
    rids["stranger"] = f"rsv_{'f' * 20}_{amount}"
    rids["OPEN"] = rids["open"].upper()
    rids.update(billing_world(api))
    wallet = api("GET", W)
    assert wallet[0] == 200
    assert (wallet[2]["balance"], wallet[2]["held"], wallet[2]["available"]) == ("48", "5", "43")
    return {"rids": rids, "wallet": wallet, "items": table_items()}


def billing_world(api: Any) -> dict[str, str]:
    """What the billing routes' refusals need (the module doc lists it); never touches w1."""

    def call(method: str, path: str, body: Any, status: int, key: str | None = None) -> Any:
        got, _, out = api(method, path, body, {"Idempotency-Key": key} if key else None)
        assert got == status, out
        return out

    def monthly(wallet_id: str) -> str:
        wallet = Store().get(wallet_record.key(wallet_id))
        assert wallet is not None
        (found,) = [b.id for b in wallet_record.buckets(wallet) if b.source == "monthly"]
        return found

    for wallet_id in ("w3", "w4", "w5", "w6"):
        call("PUT", f"/v1/wallets/{wallet_id}", {"plan": "free"}, 201)
    call("PUT", "/v1/wallets/w7", {"plan": "free", "anchor_day": 1}, 201)
    call("POST", "/v1/promo-codes", {"code": "WORLD10", "credits": "10"}, 201)
    call("POST", "/v1/promo-codes", {"code": "CAPPED", "credits": "1", "max_redemptions": 1}, 201)
    call("POST", "/v1/wallets/w2/redeem", {"code": "WORLD10"}, 201)
    call("POST", "/v1/wallets/w2/redeem", {"code": "CAPPED"}, 201)
    clock.set_clock(lambda: datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    try:  # a code that expired long ago
        expired = {"code": "EXPIRED", "credits": "1", "expires_at": "2020-01-02T00:00:00Z"}
        call("POST", "/v1/promo-codes", expired, 201)
    finally:
        clock.set_clock(None)
    call(
        "POST",
        "/v1/wallets/w2/adjustments",
        {"credits": "1", "reason": "setup"},
        201,
        "setup-adjust",
    )
    transfer = {"to_wallet_id": "w3", "credits": "1"}
    call("POST", "/v1/wallets/w2/transfers", transfer, 201, "setup-transfer")
    call("POST", "/v1/wallets/w4/referral", {"referrer_wallet_id": "w3"}, 201)
    # w5: 50 + 10 (never expiring: spent last); a hold of 60 needs the promo grant
    held = call("POST", "/v1/wallets/w5/grants", {"credits": "10", "source": "promo"}, 201)
    hold = {"feature": "chat", "credits": "60", "expires_in_seconds": 86400}
    call("POST", "/v1/wallets/w5/reservations", hold, 201)
    # w6: a promo grant expiring before the allowance, so spent first: 3 of its 10
    soon = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    promo = {"credits": "10", "source": "promo", "expires_at": soon}
    used = call("POST", "/v1/wallets/w6/grants", promo, 201)
    call("POST", "/v1/wallets/w6/charges", {"feature": "chat", "credits": "3"}, 201)
    return {
        "monthly": monthly("w1"),
        "w2_monthly": monthly("w2"),
        "held_grant": held["grant_id"],
        "used_grant": used["grant_id"],
    }


@pytest.mark.parametrize(("request_", "expect"), CASES)
def test_bad_input_is_refused_and_writes_nothing(
    api: Any,
    table_items: Any,
    world: dict[str, Any],
    request_: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    path = request_["path"].format(**world["rids"])
    headers = request_["headers"] or {}
    check_problem(
        api(request_["method"], path, request_["body"], headers, request_["query"]), expect
    )
    # Nothing written: the wallet reads the same and the table holds the same items.
    assert api("GET", W) == world["wallet"]
    assert table_items() == world["items"]


@pytest.mark.usefixtures("fresh_table")
def test_grant_expiring_after_year_9999_in_utc_is_refused(api: Any, table_items: Any) -> None:
    # A local time whose UTC instant is in year 10000: refused like any expiry more than 100
    # years ahead, before anything is written, so the wallet stays readable (such a bucket
    # could not be rendered as a timestamp).
    assert api("PUT", "/v1/wallets/w9", {"plan": "free"})[0] == 201
    wallet = api("GET", "/v1/wallets/w9")
    assert wallet[0] == 200
    before = table_items()
    status, _, problem = api(
        "POST",
        "/v1/wallets/w9/grants",
        {
            "credits": "5",
            "source": "promo",
            "expires_at": "9999-12-31T23:59:59-05:00",
        },
    )
    assert (status, names(problem, "expires_at")) == (422, True), problem
    assert table_items() == before
    assert api("GET", "/v1/wallets/w9") == wallet


@pytest.mark.parametrize("wallet_id", ["w1\n", "w1\r\n", "\nw1", "w1 "])
def test_a_wallet_id_must_match_as_a_whole(wallet_id: str) -> None:
    from credit_meter.api.routes.base import valid_wallet

    # Not through HTTP: a request path cannot carry a line break, and the router's pattern
    # (anchored with ``$``) would drop a trailing one before the handler saw it.
    with pytest.raises(InvalidRequest) as refused:
        valid_wallet(wallet_id)
    assert [p.field for p in refused.value.problems] == ["wallet_id"]
    assert valid_wallet("w1") == "w1"
