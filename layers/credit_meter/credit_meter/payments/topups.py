"""What checkouts, payments and auto top-ups share: the payment provider as they see it
(:class:`Gateway`, implemented on Stripe by :mod:`credit_meter.payments.stripe_gateway`), what it
answers, and the metadata every payment carries. The offers themselves (credit packs, top-ups
by amount) are :mod:`credit_meter.core.offers`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from credit_meter.core.errors import TopupsDisabled
from credit_meter.core.offers import Offer


def enabled() -> bool:
    """Whether this deployment sells credits: ``TOPUPS_ENABLED`` is "false" when it was
    deployed without the Stripe secrets (docs/payments.md); unset (locally) means on."""
    return os.environ.get("TOPUPS_ENABLED", "true").lower() != "false"


def require_enabled() -> None:
    """Refuse a purchase (501 ``topups-disabled``) in a deployment without Stripe keys."""
    if not enabled():
        raise TopupsDisabled(
            "this deployment has no Stripe keys, so credits cannot be bought here; "
            "ask the operator to deploy it with StripeApiKeySecretArn and StripeWebhookSecretArn"
        )


@dataclass(frozen=True, slots=True)
class Checkout:
    checkout_session_id: str
    url: str
    expires_at: int | None
    offer: Offer


@dataclass(frozen=True, slots=True)
class AutoTopup:
    wallet_id: str
    enabled: bool
    threshold: Decimal | None
    pack: str | None
    has_payment_method: bool
    state: str | None  # armed, fired, declined
    retry_after: int | None  # epoch seconds, after a decline
    last_attempt: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the payment provider said to an off-session payment."""

    payment_id: str | None
    status: str  # succeeded, processing, declined
    error: str | None = None


class Gateway(Protocol):
    """The payment provider, as checkouts and auto top-ups need it. Operations take a factory
    for it, called only once the request is known to need it (bad input never reaches it)."""

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
    ) -> Checkout: ...

    def charge_saved_method(
        self,
        *,
        offer: Offer,
        metadata: dict[str, str],
        customer_id: str,
        payment_method_id: str,
        idempotency_key: str,
    ) -> Attempt: ...

    def invoice_pdf(self, invoice_id: str) -> str | None: ...


def deployment() -> str:
    """This deployment's name (``DEPLOYMENT_ID``: the stack name in the cloud). Payments carry
    it: several deployments may share one Stripe account, which sends every event to all."""
    return os.environ.get("DEPLOYMENT_ID") or "local"


def checkout_metadata(wallet_id: str, offer: Offer, kind: str, **more: str) -> dict[str, str]:
    """What a payment carries so its events can be credited without asking anyone."""
    return {
        "deployment": deployment(),
        "wallet_id": wallet_id,
        "credits": f"{offer.credits.normalize():f}",
        "offer": offer.offer,
        "kind": kind,
        **more,
    }
