"""Stripe events → :class:`~credit_meter.payments.facts.Observation`: what each event type says
about a payment, read from the event's JSON (already verified by the webhook function). Plain dict
reading: no Stripe SDK here, so the domain can be tested without it.

Only the fields named in Stripe's API reference for each object are read; anything else in
the event is ignored. Events about payments this service did not start (no ``wallet_id`` in
the metadata and no payment we know of) still become observations: merging them is harmless
and a refund may arrive before the payment it refunds.

A verified event is still input: whatever it holds must stay within Stripe's own documented
limits (ids, metadata values, amounts, times) or it is refused as a whole with
:class:`EventRejected` before anything is written. :func:`loads` reads the body so that no
number in it can cost more than a few microseconds.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from credit_meter.core.money import AmountError, parse_amount
from credit_meter.payments.facts import Observation
from credit_meter.payments.topups import deployment

HANDLED = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)


# Stripe's own limits (its API reference): object ids are at most 255 characters, metadata
# values at most 500, and an amount at most eight digits of the currency's smallest unit
# (99,999,999: $999,999.99). Nothing Stripe sends is larger; what is, is refused.
MAX_ID_CHARS = 255
MAX_METADATA_CHARS = 500
MAX_MINOR_UNITS = 99_999_999
# Unix times in seconds, up to the last second of the year 9999 (what a date can show).
MAX_UNIX_TIME = 253_402_300_799
# A JSON number token in an event: amounts and times have at most a dozen digits, so twenty
# is generous. Longer ones are refused before int() or Decimal() sees them: int() of a long
# token costs quadratic time (and past 4,300 digits raises), and int(Decimal("1e999999"))
# builds a million-digit integer.
MAX_NUMBER_CHARS = 20
MAX_EXPONENT = 20
MAX_CROSSING_DIGITS = 9


class EventRejected(ValueError):
    """A verified event outside Stripe's own bounds: never recorded; ``reason`` says why."""


def _int_token(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise EventRejected(f"a number of {len(token)} digits")
    return int(token)


def _float_token(token: str) -> Decimal:
    if len(token) > MAX_NUMBER_CHARS:
        raise EventRejected(f"a number of {len(token)} characters")
    try:
        value = Decimal(token)
    except InvalidOperation:  # pragma: no cover - json only hands over valid numbers
        raise EventRejected("a number that is not one") from None
    if abs(value.adjusted()) > MAX_EXPONENT:  # adjusted() never rounds or overflows
        raise EventRejected(f"a number with exponent {value.adjusted()}")
    return value


def loads(payload: bytes) -> Any:
    """The event's JSON, its numbers as ``int`` or ``Decimal`` (never binary floats), each
    bounded in length and exponent (:class:`EventRejected` otherwise); ``ValueError`` when the
    body is not JSON at all."""
    return json.loads(payload, parse_int=_int_token, parse_float=_float_token)


def _id(value: object) -> str | None:
    """An id field, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        return None
    # Stripe's ids are ASCII; a sort key holds 1,024 bytes, which 255 wide characters pass.
    if len(value) > MAX_ID_CHARS or not value.isascii():
        raise EventRejected(f"an id of {len(value)} characters, or not ASCII")
    return value


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    return int(value)  # bounded by loads: at most MAX_EXPONENT digits


def _amount(value: object) -> int | None:
    """An amount in the currency's smallest unit, within Stripe's maximum charge."""
    amount = _number(value)
    if amount is not None and not 0 <= amount <= MAX_MINOR_UNITS:
        raise EventRejected(f"an amount of {amount}")
    return amount


def _time(value: object) -> int | None:
    """A Unix time in seconds."""
    seconds = _number(value)
    if seconds is not None and not 0 <= seconds <= MAX_UNIX_TIME:
        raise EventRejected(f"a time of {seconds}")
    return seconds


def _text(value: object, limit: int = MAX_ID_CHARS) -> str | None:
    """A short string field (a currency, a status, a decline code, a URL)."""
    if not isinstance(value, str):
        return None
    if len(value) > limit:
        raise EventRejected(f"a string of {len(value)} characters")
    return value


def _foreign(obj: dict[str, Any]) -> bool:
    """Started by another deployment on the same Stripe account (its metadata says so)."""
    meta = obj.get("metadata")
    return isinstance(meta, dict) and meta.get("deployment", deployment()) != deployment()


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return {}
    for value in meta.values():
        _text(value, MAX_METADATA_CHARS)
    out: dict[str, Any] = {}
    if isinstance(meta.get("wallet_id"), str):
        out["wallet_id"] = meta["wallet_id"]
    try:
        credits = parse_amount(meta.get("credits"))
        if credits > 0:
            out["credits"] = credits
    except AmountError:
        pass
    for name in ("offer", "kind"):
        if isinstance(meta.get(name), str):
            out[name] = meta[name]
    crossing = meta.get("crossing")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if isinstance(crossing, str) and crossing.isascii() and crossing.isdigit():
        if len(crossing) > MAX_CROSSING_DIGITS:  # ours count crossings from 1
            raise EventRejected(f"a crossing of {len(crossing)} digits")
        out["crossing"] = int(crossing)
    return out


def observe(event: dict[str, Any]) -> Observation | None:
    """The observation an event makes, or None for event types (or objects) we do not use.

    Raises :class:`EventRejected` when a field it reads is outside Stripe's bounds."""
    kind = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if kind not in HANDLED or not isinstance(obj, dict) or _foreign(obj):
        return None
    event_id = event.get("id", "")
    if not isinstance(event_id, str) and event_id is not None:
        raise EventRejected("an event id that is not a string")
    base: dict[str, Any] = {
        "event_id": _id(event_id) or "",
        "event_type": kind,
        "at": (_time(event.get("created")) or 0) * 1000,
    }
    if kind.startswith("charge.dispute."):
        return _dispute(obj, base)  # a dispute's own date is not the payment's
    created = _time(obj.get("created"))
    base["created"] = None if created is None else created * 1000
    if kind.startswith("checkout.session."):
        return _session(kind, obj, base)
    if kind.startswith("payment_intent."):
        return _payment_intent(kind, obj, base)
    return _charge(kind, obj, base)


def _session(kind: str, obj: dict[str, Any], base: dict[str, Any]) -> Observation | None:
    payment = _id(obj.get("payment_intent"))
    if payment is None or obj.get("mode", "payment") != "payment":
        return None  # nothing was charged (no PaymentIntent): nothing to credit or refund
    return Observation(
        payment_id=payment,
        amount=_amount(obj.get("amount_total")),
        currency=_text(obj.get("currency")),
        session_id=_id(obj),
        invoice_id=_id(obj.get("invoice")),
        customer_id=_id(obj.get("customer")),
        paid=kind != "checkout.session.async_payment_failed"
        and obj.get("payment_status") == "paid",
        failed=kind == "checkout.session.async_payment_failed",
        failure="async payment failed" if kind.endswith("failed") else None,
        **_metadata(obj),
        **base,
    )


def _payment_intent(kind: str, obj: dict[str, Any], base: dict[str, Any]) -> Observation | None:
    payment = _id(obj)
    meta = _metadata(obj)
    if payment is None or "wallet_id" not in meta:
        return None  # not a payment this service started
    failed = kind == "payment_intent.payment_failed"
    if failed and meta.get("kind") != "auto_topup":
        # A checkout's customer may try another card; the session's events are final.
        return None
    error = obj.get("last_payment_error") if failed else None
    failure = None
    if isinstance(error, dict):
        code = error.get("decline_code") or error.get("code")
        failure = _text(code) or "payment failed"
    return Observation(
        payment_id=payment,
        amount=_amount(obj.get("amount")),
        currency=_text(obj.get("currency")),
        customer_id=_id(obj.get("customer")),
        payment_method_id=_id(obj.get("payment_method")),
        saves_method=obj.get("setup_future_usage") == "off_session",
        paid=kind == "payment_intent.succeeded" and obj.get("status") == "succeeded",
        failed=failed,
        failure=failure or ("payment failed" if failed else None),
        **meta,
        **base,
    )


def _charge(kind: str, obj: dict[str, Any], base: dict[str, Any]) -> Observation | None:
    payment = _id(obj.get("payment_intent"))
    if payment is None:
        return None
    receipt = _text(obj.get("receipt_url"), 2048)
    return Observation(
        payment_id=payment,
        amount=_amount(obj.get("amount")),
        currency=_text(obj.get("currency")),
        receipt_url=receipt,
        refunded=_amount(obj.get("amount_refunded")) if kind == "charge.refunded" else None,
        **_metadata(obj),
        **base,
    )


def _dispute(obj: dict[str, Any], base: dict[str, Any]) -> Observation | None:
    payment = _id(obj.get("payment_intent"))
    dispute = _id(obj)
    status = _text(obj.get("status"))
    if payment is None or dispute is None or status is None:
        return None
    return Observation(
        payment_id=payment,
        dispute_id=dispute,
        dispute_status=status,
        dispute_amount=_amount(obj.get("amount")),
        **base,
    )
