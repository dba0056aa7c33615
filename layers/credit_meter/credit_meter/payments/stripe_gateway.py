"""The :class:`~credit_meter.payments.topups.Gateway` on Stripe's API (stripe-python's
StripeClient).

Imported only by what talks to Stripe (checkouts, invoices, auto top-ups), never on the
metering hot path. ``STRIPE_API_BASE`` points the client elsewhere (a local stand-in for
Stripe's API in tests and ``make run``); the key comes from
:mod:`credit_meter.storage.secret_values`.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache

import stripe

from credit_meter.core.errors import PaymentProviderError
from credit_meter.core.idempotency import key_reused
from credit_meter.core.offers import Offer
from credit_meter.payments.topups import Attempt, Checkout, deployment
from credit_meter.storage.secret_values import secret


@cache
def _client_for(api_key: str, base: str | None) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,  # with Stripe's own idempotency keys, so retries are safe
        # Well inside the functions' own timeouts (stripe-python's default is 80 s).
        http_client=stripe.new_default_http_client(timeout=8),
    )


def _client() -> stripe.StripeClient:
    """A client for the current key: a rotated secret (re-read every 5 minutes) gets a new one."""
    return _client_for(secret("STRIPE_API_KEY"), os.environ.get("STRIPE_API_BASE"))


def reset_client() -> None:
    """Forget the clients made so far (tests point the gateway at another Stripe API)."""
    _client_for.cache_clear()


def _key(name: str) -> str:
    """An idempotency key for Stripe, scoped to this deployment so that two deployments on one
    Stripe account never share one; a digest if it would pass Stripe's 255 characters."""
    key = f"{deployment()}:{name}"
    return key if len(key) <= 255 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _failure(err: stripe.StripeError) -> PaymentProviderError:
    # user_message is written for end users and never carries the key; the rest may.
    message = err.user_message or "the payment provider refused the request"
    return PaymentProviderError(f"{message} ({type(err).__name__})")


class StripeGateway:
    def __init__(self, client: stripe.StripeClient | None = None) -> None:
        self.client = client or _client()

    def create_checkout(
        self,
        *,
        wallet_id: str,
        offer: Offer,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        customer_id: str | None,
        save_payment_method: bool,
        idempotency_key: str | None,
    ) -> Checkout:
        intent: dict[str, object] = {"metadata": metadata}
        if save_payment_method:
            intent["setup_future_usage"] = "off_session"
        params: dict[str, object] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": offer.currency,
                        "unit_amount": offer.amount,
                        "product_data": {"name": offer.name},
                    },
                }
            ],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": wallet_id,
            "metadata": metadata,
            "payment_intent_data": intent,
            # A paid checkout then has an invoice, with a PDF, for the payments list.
            "invoice_creation": {"enabled": True, "invoice_data": {"metadata": metadata}},
        }
        if customer_id:
            params["customer"] = customer_id
        else:
            params["customer_creation"] = "always"
        options: dict[str, str] = {}
        if idempotency_key:
            options["idempotency_key"] = _key(f"checkout:{idempotency_key}")
        try:
            session = self.client.v1.checkout.sessions.create(
                params,  # type: ignore[arg-type]
                options,  # type: ignore[arg-type]
            )
        except stripe.IdempotencyError:
            # Stripe keeps what a key was first used for: another body under it is a reuse.
            raise key_reused() from None
        except stripe.StripeError as err:
            raise _failure(err) from None
        return Checkout(
            checkout_session_id=session.id,
            url=str(session.url),
            expires_at=session.expires_at,
            offer=offer,
        )

    def charge_saved_method(
        self,
        *,
        offer: Offer,
        metadata: dict[str, str],
        customer_id: str,
        payment_method_id: str,
        idempotency_key: str,
    ) -> Attempt:
        """An off-session PaymentIntent, confirmed at once. A decline is an answer; any other
        failure raises (the caller retries with the same idempotency key)."""
        try:
            intent = self.client.v1.payment_intents.create(
                {
                    "amount": offer.amount,
                    "currency": offer.currency,
                    "customer": customer_id,
                    "payment_method": payment_method_id,
                    "off_session": True,
                    "confirm": True,
                    # A saved card, charged with nobody there: no redirect-based methods.
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "metadata": metadata,
                    "description": f"Auto top-up: {offer.name}",
                },
                {"idempotency_key": _key(idempotency_key)},
            )
        except stripe.CardError as err:
            error = err.error
            payment = getattr(error, "payment_intent", None) if error else None
            code = (error.decline_code or error.code) if error else None
            return Attempt(
                payment_id=getattr(payment, "id", None),
                status="declined",
                error=str(code or "card_declined"),
            )
        except (
            stripe.InvalidRequestError,
            stripe.PermissionError,
            stripe.AuthenticationError,
            stripe.IdempotencyError,
        ) as err:
            # Refused for good (card detached, customer deleted, key revoked...): trying the
            # same request again would be refused again, so it counts as a decline (back off).
            return Attempt(payment_id=None, status="declined", error=type(err).__name__)
        status = "succeeded" if intent.status == "succeeded" else "processing"
        return Attempt(payment_id=intent.id, status=status)

    def invoice_pdf(self, invoice_id: str) -> str | None:
        try:
            invoice = self.client.v1.invoices.retrieve(invoice_id)
        except stripe.InvalidRequestError:
            return None
        except stripe.StripeError as err:
            raise _failure(err) from None
        return invoice.invoice_pdf or invoice.hosted_invoice_url
