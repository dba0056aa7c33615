"""Stripe events → :class:`~credit_meter.payments.facts.Observation`: what each event type says
about a payment, read from the event's JSON (already verified by the webhook function). Plain dict
reading: no Stripe SDK here, so the domain can be tested without it.

Only the fields named in Stripe's API reference for each object are read; anything else in
the event is ignored. Events about payments this service did not start (no ``wallet_id`` in
the metadata and no payment we know of) still become observations: merging them is harmless
and a refund may arrive before the payment it refunds.
"""

from __future__ import annotations

from decimal import Decimal
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


def _id(value: object) -> str | None:
    """An id field, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    return int(value)


def _foreign(obj: dict[str, Any]) -> bool:
    """Started by another deployment on the same Stripe account (its metadata says so)."""
    meta = obj.get("metadata")
    return isinstance(meta, dict) and meta.get("deployment", deployment()) != deployment()


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return {}
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
    if isinstance(crossing, str) and crossing.isdigit():
        out["crossing"] = int(crossing)
    return out


def observe(event: dict[str, Any]) -> Observation | None:
    """The observation an event makes, or None for event types (or objects) we do not use."""
    kind = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if kind not in HANDLED or not isinstance(obj, dict) or _foreign(obj):
        return None
    base: dict[str, Any] = {
        "event_id": str(event.get("id", "")),
        "event_type": kind,
        "at": (_int(event.get("created")) or 0) * 1000,
    }
    if kind.startswith("charge.dispute."):
        return _dispute(obj, base)  # a dispute's own date is not the payment's
    created = _int(obj.get("created"))
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
        amount=_int(obj.get("amount_total")),
        currency=obj.get("currency"),
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
        failure = str(error.get("decline_code") or error.get("code") or "payment failed")
    return Observation(
        payment_id=payment,
        amount=_int(obj.get("amount")),
        currency=obj.get("currency"),
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
    receipt = obj.get("receipt_url")
    return Observation(
        payment_id=payment,
        amount=_int(obj.get("amount")),
        currency=obj.get("currency"),
        receipt_url=receipt if isinstance(receipt, str) else None,
        refunded=_int(obj.get("amount_refunded")) if kind == "charge.refunded" else None,
        **_metadata(obj),
        **base,
    )


def _dispute(obj: dict[str, Any], base: dict[str, Any]) -> Observation | None:
    payment = _id(obj.get("payment_intent"))
    dispute = _id(obj)
    status = obj.get("status")
    if payment is None or dispute is None or not isinstance(status, str):
        return None
    return Observation(
        payment_id=payment,
        dispute_id=dispute,
        dispute_status=status,
        dispute_amount=_int(obj.get("amount")),
        **base,
    )
