"""Stripe webhook events for tests and local runs: the objects, the Event around them, the
``Stripe-Signature`` header, and a POST to a webhook endpoint.

The objects have the fields Stripe sends (for :data:`API_VERSION`); ids are fake but shaped like
Stripe's. What the service puts in metadata is built by :func:`wallet_metadata`::

    from devtools import stripe_events as se

    pi = se.payment_intent(
        amount=2000,
        metadata=se.wallet_metadata("w_demo", "2500", "pack_2500", kind="auto_topup", crossing=1),
    )
    status, body = se.post(url, se.event("payment_intent.succeeded", pi), "whsec_local_fake")

Nothing here talks to Stripe: :func:`post` only reaches the URL it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
import urllib.error
import urllib.request
from typing import Any

Json = dict[str, Any]

# The API version the events are rendered in (the version of the pinned stripe library).
API_VERSION = "2026-10-28.endive"

# Where the fake Stripe of ``devtools.fake_stripe`` listens when run on its own.
LOCAL_API_BASE = "http://127.0.0.1:12111"

# Test payment methods (Stripe's ``pm_card_*`` test tokens) and the card each stands for.
CARDS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_amex": ("amex", "8431"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_visa_chargeDeclined": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069"),
    "pm_card_authenticationRequired": ("visa", "3184"),
}

# (code, decline_code, message) of each test card that is declined.
DECLINES: dict[str, tuple[str, str, str]] = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_visa_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_visa_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_authenticationRequired": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A random id shaped like Stripe's: ``new_id("pi")`` → ``pi_3Q…`` (24 characters after
    the prefix; checkout sessions use ``new_id("cs_test", 58)``)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


def wallet_metadata(
    wallet_id: str,
    credits: str,
    offer: str,
    *,
    kind: str = "checkout",
    crossing: int | str | None = None,
) -> dict[str, str]:
    """The metadata the service puts on a checkout's PaymentIntent or an auto top-up's:
    ``wallet_id``, ``credits`` (a decimal string), ``offer`` (``pack_500`` …, or ``fiat``),
    ``kind`` (``checkout`` or ``auto_topup``) and, for an auto top-up, ``crossing``."""
    meta = {"wallet_id": wallet_id, "credits": credits, "offer": offer, "kind": kind}
    if crossing is not None:
        meta["crossing"] = str(crossing)
    return meta


# --------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------


def customer_details(email: str = "buyer@example.com", name: str = "Demo Buyer") -> Json:
    """A completed checkout session's ``customer_details``."""
    return {
        "address": {
            "city": None,
            "country": "US",
            "line1": None,
            "line2": None,
            "postal_code": "94107",
            "state": None,
        },
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def checkout_session(
    *,
    session_id: str | None = None,
    payment_intent: str | None = None,
    wallet_id: str = "w_demo",
    credits: str = "500",
    offer: str = "pack_500",
    amount_total: int | None = 500,
    currency: str | None = "usd",
    payment_status: str = "paid",
    status: str = "complete",
    invoice: str | None = None,
    customer: str | None = None,
    metadata: dict[str, str] | None = None,
    mode: str = "payment",
    client_reference_id: str | None = None,
    customer_creation: str | None = "if_required",
    customer_email: str | None = None,
    invoice_enabled: bool | None = None,
    success_url: str
    | None = "http://127.0.0.1:3000/checkout/success?session_id={CHECKOUT_SESSION_ID}",
    cancel_url: str | None = "http://127.0.0.1:3000/checkout/cancel",
    url: str | None = None,
    created: int | None = None,
    expires_at: int | None = None,
    payment_method_types: list[str] | None = None,
) -> Json:
    """A Checkout Session (``object: "checkout.session"``).

    By default a completed, paid session of ``pack_500`` for wallet ``w_demo``. ``metadata``
    defaults to :func:`wallet_metadata` of ``wallet_id``/``credits``/``offer`` and
    ``client_reference_id`` to ``wallet_id``. A complete session gets a ``payment_intent`` (made
    up when not given) and ``customer_details``; an open one keeps ``payment_intent`` null, as
    Stripe creates it only when the customer pays. ``invoice_enabled`` defaults to whether an
    ``invoice`` is given."""
    created = now() if created is None else created
    complete = status == "complete"
    if payment_intent is None and complete and mode == "payment":
        payment_intent = new_id("pi")
    if invoice_enabled is None:
        invoice_enabled = invoice is not None
    return {
        "id": session_id or new_id("cs_test", 58),
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": wallet_id if client_reference_id is None else client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": None if customer is not None else customer_creation,
        "customer_details": customer_details(customer_email or "buyer@example.com")
        if complete
        else None,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": created + 24 * 3600 if expires_at is None else expires_at,
        "invoice": invoice,
        "invoice_creation": {
            "enabled": invoice_enabled,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        }
        if mode == "payment"
        else None,
        "livemode": False,
        "locale": None,
        "metadata": wallet_metadata(wallet_id, credits, offer) if metadata is None else metadata,
        "mode": mode,
        "payment_intent": payment_intent,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": payment_method_types or ["card"],
        "payment_status": payment_status,
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": url if status == "open" else None,
        "wallet_options": None,
    }


def card_payment_method(
    payment_method: str = "pm_card_visa", *, customer: str | None = None, created: int | None = None
) -> Json:
    """A card PaymentMethod (``object: "payment_method"``) for one of the test tokens of
    :data:`CARDS` (an unknown id is shown as a Visa ending 4242)."""
    brand, last4 = CARDS.get(payment_method, ("visa", "4242"))
    return {
        "id": payment_method,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "wallet": None,
        },
        "created": now() if created is None else created,
        "customer": customer,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def card_error(
    payment_method: str = "pm_card_chargeDeclined",
    *,
    charge: str | None = None,
    customer: str | None = None,
) -> Json:
    """The error Stripe gives for a declined card: a PaymentIntent's ``last_payment_error``,
    and (with the PaymentIntent added) the ``error`` of the HTTP 402 answer."""
    code, decline_code, message = DECLINES.get(
        payment_method, ("card_declined", "generic_decline", "Your card was declined.")
    )
    return {
        "advice_code": "try_again_later" if decline_code == "generic_decline" else None,
        "charge": charge,
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": message,
        "network_advice_code": None,
        "network_decline_code": None,
        "param": None,
        "payment_method": card_payment_method(payment_method, customer=customer),
        "type": "card_error",
    }


def payment_intent(
    *,
    id: str | None = None,
    amount: int = 500,
    currency: str = "usd",
    status: str = "succeeded",
    metadata: dict[str, str] | None = None,
    customer: str | None = None,
    payment_method: str | None = "pm_card_visa",
    latest_charge: str | None = None,
    last_payment_error: Json | None = None,
    created: int | None = None,
    amount_received: int | None = None,
    setup_future_usage: str | None = None,
    description: str | None = None,
) -> Json:
    """A PaymentIntent (``object: "payment_intent"``); by default a succeeded one of 500 usd
    cents. ``amount_received`` follows the status (the amount once succeeded, else 0), and a
    ``latest_charge`` is made up for an attempted payment (succeeded, processing, or with a
    ``last_payment_error``)."""
    pi_id = id or new_id("pi")
    if amount_received is None:
        amount_received = amount if status == "succeeded" else 0
    if latest_charge is None and (
        status in {"succeeded", "processing"} or last_payment_error is not None
    ):
        latest_charge = new_id("ch")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{pi_id[-12:]}FakeSecret",
        "confirmation_method": "automatic",
        "created": now() if created is None else created,
        "currency": currency,
        "customer": customer,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": last_payment_error,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": setup_future_usage,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(
    *,
    id: str | None = None,
    payment_intent: str | None = None,
    amount: int = 500,
    amount_refunded: int = 0,
    refunded: bool | None = None,
    currency: str = "usd",
    receipt_url: str | None = None,
    metadata: dict[str, str] | None = None,
    status: str = "succeeded",
    customer: str | None = None,
    payment_method: str | None = "pm_card_visa",
    created: int | None = None,
    disputed: bool = False,
    failure_code: str | None = None,
    failure_message: str | None = None,
) -> Json:
    """A Charge (``object: "charge"``); by default a succeeded one of 500 usd cents.
    ``refunded`` defaults to whether the whole amount is refunded (as Stripe sets it), and
    ``receipt_url`` to a made-up address on pay.stripe.com for a succeeded charge."""
    ch_id = id or new_id("ch")
    succeeded = status == "succeeded"
    failed = status == "failed"
    brand, last4 = CARDS.get(payment_method or "", ("visa", "4242"))
    if receipt_url is None and succeeded:
        receipt_url = f"https://pay.stripe.com/receipts/payment/{ch_id}FakeReceipt"
    if failed:
        decline = DECLINES.get(payment_method or "", ("card_declined", "generic_decline", ""))
        failure_code = failure_code or decline[0]
        failure_message = failure_message or decline[2] or "Your card was declined."
        outcome: Json = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": decline[1],
            "risk_level": "normal",
            "risk_score": 41,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    else:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "id": ch_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if succeeded else 0,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if succeeded else None,
        "billing_details": {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "94107",
                "state": None,
            },
            "email": "buyer@example.com",
            "name": "Demo Buyer",
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "CREDIT METER",
        "captured": succeeded,
        "created": now() if created is None else created,
        "currency": currency,
        "customer": customer,
        "description": None,
        "disputed": disputed,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(metadata or {}),
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": succeeded,
        "payment_intent": payment_intent,
        "payment_method": payment_method,
        "payment_method_details": {
            "card": {
                "amount_authorized": amount if succeeded else None,
                "brand": brand,
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "pass",
                },
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": last4,
                "network": brand,
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "radar_options": {},
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": amount_refunded >= amount if refunded is None else refunded,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def dispute(
    *,
    id: str | None = None,
    charge: str | None = None,
    payment_intent: str | None = None,
    amount: int = 500,
    currency: str = "usd",
    status: str = "needs_response",
    reason: str = "fraudulent",
    created: int | None = None,
    evidence_due_by: int | None = None,
    metadata: dict[str, str] | None = None,
) -> Json:
    """A Dispute (``object: "dispute"``, id ``dp_…``). ``status`` is one of Stripe's:
    ``warning_needs_response``, ``warning_under_review``, ``warning_closed``,
    ``needs_response``, ``under_review``, ``won``, ``lost`` (and ``prevented``); ``reason``
    e.g. ``fraudulent``, ``product_not_received``, ``duplicate``, ``general``."""
    created = now() if created is None else created
    return {
        "id": id or new_id("dp"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge or new_id("ch"),
        "created": created,
        "currency": currency,
        "enhanced_eligibility_types": [],
        "evidence": {
            **dict.fromkeys(_EVIDENCE_FIELDS),
            "enhanced_evidence": {},
        },
        "evidence_details": {
            "due_by": created + 7 * 86400 if evidence_due_by is None else evidence_due_by,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": status.startswith("warning_"),
        "livemode": False,
        "metadata": dict(metadata or {}),
        "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
        "payment_intent": payment_intent,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "case_type": "inquiry" if status.startswith("warning_") else "chargeback",
                "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
            },
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }


def invoice(
    *,
    id: str | None = None,
    customer: str | None = None,
    amount: int = 500,
    currency: str = "usd",
    status: str = "paid",
    description: str | None = "500 credits",
    customer_email: str | None = "buyer@example.com",
    base_url: str = LOCAL_API_BASE,
    created: int | None = None,
    metadata: dict[str, str] | None = None,
) -> Json:
    """An Invoice (``object: "invoice"``) as Checkout creates one after a payment (when
    ``invoice_creation`` is enabled). ``hosted_invoice_url`` and ``invoice_pdf`` are
    ``<base_url>/invoices/<id>`` and ``<base_url>/invoices/<id>.pdf``."""
    in_id = id or new_id("in")
    created = now() if created is None else created
    paid = status == "paid"
    line_id = new_id("il")
    return {
        "id": in_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Credit Meter (test)",
        "account_tax_ids": None,
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": paid,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "custom_fields": None,
        "customer": customer,
        "customer_address": None,
        "customer_email": customer_email,
        "customer_name": "Demo Buyer",
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": description,
        "discounts": [],
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"{base_url}/invoices/{in_id}",
        "invoice_pdf": f"{base_url}/invoices/{in_id}.pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": line_id,
                    "object": "line_item",
                    "amount": amount,
                    "currency": currency,
                    "description": description,
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": in_id,
                    "livemode": False,
                    "metadata": {},
                    "parent": None,
                    "period": {"end": created, "start": created},
                    "pretax_credit_amounts": [],
                    "pricing": None,
                    "quantity": 1,
                    "taxes": [],
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{in_id}/lines",
        },
        "livemode": False,
        "metadata": dict(metadata or {}),
        "next_payment_attempt": None,
        "number": f"DEMO{in_id[-4:].upper()}-0001",
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": created if paid else None,
            "voided_at": None,
        },
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "test_clock": None,
        "threshold_reason": None,
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


# --------------------------------------------------------------------------
# Events, signatures, delivery
# --------------------------------------------------------------------------


def event(
    type: str,
    obj: Json,
    *,
    event_id: str | None = None,
    created: int | None = None,
    previous_attributes: Json | None = None,
) -> Json:
    """An Event (``object: "event"``) of ``type`` about ``obj``, as Stripe delivers it to a
    webhook endpoint. ``previous_attributes`` (for ``*.updated`` events) goes into ``data``."""
    data: Json = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now() if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def encode(evt: Json) -> bytes:
    """An event's body as Stripe sends it (JSON indented by two spaces)."""
    return json.dumps(evt, indent=2).encode()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload``: ``t=<timestamp>,v1=<signature>``, the
    signature being the hex HMAC-SHA256, keyed with the endpoint secret, of
    ``"<timestamp>.<payload>"``. ``timestamp`` defaults to now."""
    ts = now() if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256)
    return f"t={ts},v1={mac.hexdigest()}"


# Everything these tools talk to is local: never go through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _json_body(raw: bytes) -> Json:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"body": raw.decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"body": parsed}


def post(
    url: str,
    event: Json,
    secret: str,
    *,
    timestamp: int | None = None,
    timeout: float = 30.0,
) -> tuple[int, Json]:
    """Serialise, sign and POST ``event`` to the webhook endpoint at ``url``, as Stripe does.
    Returns the HTTP status and the JSON body of the answer (``{}`` when empty; a body that is
    not a JSON object comes back as ``{"body": …}``)."""
    payload = encode(event)
    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, secret, timestamp),
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _json_body(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, _json_body(err.read())
