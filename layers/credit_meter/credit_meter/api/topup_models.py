"""HTTP models of the top-up routes (offers, checkout, payments, auto top-up) and of the Stripe
webhook's answer: kept apart from :mod:`credit_meter.api.models` so that the metering routes'
cold start never builds them; the top-up routes import this module on first use."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field

from credit_meter.api.fields import (
    AmountOut,
    Name,
    NonNegativeAmount,
    PageQuery,
    PositiveAmount,
    RequestBody,
    ResponseBody,
    Timestamp,
    TimestampMs,
)
from credit_meter.api.schema_models import any_case, catalog_names, not_null
from credit_meter.core import clock
from credit_meter.core.offers import Topups, minor_units

if TYPE_CHECKING:
    from credit_meter.core.offers import FiatTopups
    from credit_meter.payments.facts import PaymentLine
    from credit_meter.payments.topups import AutoTopup, Checkout

StrictBool = Annotated[bool, Field(strict=True)]
Url = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$"), AfterValidator(str.lower)]
StripeId = Annotated[str, Field(min_length=4, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]


def _money(amount: int, currency: str) -> Decimal:
    return Decimal(amount) / minor_units(currency)


def _fiat_amount(fiat: FiatTopups) -> dict[str, Any]:
    """A top-up amount: from the minimum to the maximum, in the currency's minor units. The
    string's pattern is exact for a minimum of 1 and a power of ten as maximum (the catalog's);
    otherwise it bounds the number alone."""
    places = len(str(minor_units(fiat.currency))) - 1
    number = {
        "type": "number",
        "minimum": float(fiat.minimum),
        "maximum": float(fiat.maximum),
        "multipleOf": 10.0**-places,
    }
    digits = len(str(int(fiat.maximum))) - 1
    if fiat.minimum == 1 and fiat.maximum == 10**digits:
        fraction = f"(\\.[0-9]{{1,{places}}}0*)?" if places else "(\\.0+)?"
        text = f"^0*(?:[1-9][0-9]{{0,{digits - 1}}}{fraction}|{10**digits}(\\.0+)?)$"
    else:
        text = r"^[0-9]+(\.[0-9]+)?$"
    return {"oneOf": [{"type": "string", "pattern": text}, number]}


def _checkout_schema(schema: dict[str, Any]) -> None:
    """For the document: a pack (in its own currency, if one is named) or an amount in the
    top-up currency, within its bounds."""
    from credit_meter.core.catalog import catalog

    topups = catalog().topups
    pack_currencies = sorted({p.currency for p in topups.packs.values()})
    by_pack: dict[str, Any] = {
        "required": ["pack"],
        "properties": {"pack": {"not": {"type": "null"}}, "amount": {"type": "null"}},
    }
    if len(pack_currencies) == 1:
        by_pack["properties"]["currency"] = {
            "anyOf": [{"type": "string", "pattern": any_case(pack_currencies[0])}, {"type": "null"}]
        }
    branches = [by_pack]
    if topups.fiat is not None:
        branches.append(
            {
                "required": ["amount", "currency"],
                "properties": {
                    "pack": {"type": "null"},
                    "amount": _fiat_amount(topups.fiat),
                    "currency": {"type": "string", "pattern": any_case(topups.fiat.currency)},
                },
            }
        )
    schema["oneOf"] = branches


class CheckoutIn(RequestBody):
    model_config = ConfigDict(json_schema_extra=_checkout_schema)

    pack: Annotated[Name, catalog_names(lambda c: c.topups.packs)] | None = None
    amount: PositiveAmount | None = None  # in ``currency``, for a top-up by amount
    currency: Currency | None = None
    success_url: Url
    cancel_url: Url
    save_payment_method: StrictBool = False  # keep the card for auto top-ups


class CheckoutOut(ResponseBody):
    checkout_session_id: str
    url: str
    expires_at: Timestamp | None
    offer: str
    credits: AmountOut
    amount: AmountOut
    currency: str

    @classmethod
    def of(cls, c: Checkout) -> CheckoutOut:
        return cls(
            checkout_session_id=c.checkout_session_id,
            url=c.url,
            expires_at=c.expires_at,
            offer=c.offer.offer,
            credits=c.offer.credits,
            amount=_money(c.offer.amount, c.offer.currency),
            currency=c.offer.currency,
        )


class PackOut(ResponseBody):
    pack: str
    name: str
    credits: AmountOut
    price: AmountOut
    currency: str


class FiatOut(ResponseBody):
    currency: str
    presets: list[AmountOut]
    minimum: AmountOut
    maximum: AmountOut
    credits_per_unit: AmountOut


class OffersOut(ResponseBody):
    packs: list[PackOut]
    amounts: FiatOut | None

    @classmethod
    def of(cls, t: Topups) -> OffersOut:
        fiat = t.fiat
        return cls(
            packs=[
                PackOut(
                    pack=p.id, name=p.name, credits=p.credits, price=p.price, currency=p.currency
                )
                for p in t.packs.values()
            ],
            amounts=None
            if fiat is None
            else FiatOut(
                currency=fiat.currency,
                presets=list(fiat.presets),
                minimum=fiat.minimum,
                maximum=fiat.maximum,
                credits_per_unit=fiat.credits_per_unit,
            ),
        )


class PaymentOut(ResponseBody):
    payment_id: str
    created_at: TimestampMs
    status: Literal["pending", "paid", "failed", "refunded", "disputed"]
    kind: str | None
    offer: str | None
    amount: AmountOut | None
    currency: str | None
    refunded_amount: AmountOut
    credits: AmountOut | None
    credited: AmountOut  # what the payment has in the wallet now (less refunds, disputes)
    checkout_session_id: str | None
    invoice_id: str | None
    invoice_url: str | None  # this API's link to the invoice PDF (or the card receipt)
    receipt_url: str | None

    @classmethod
    def of(cls, p: PaymentLine, wallet_id: str) -> PaymentOut:
        currency = p.currency or "usd"
        has_doc = p.invoice_id is not None or p.receipt_url is not None
        return cls(
            payment_id=p.payment_id,
            created_at=p.created_at,
            status=p.status,  # type: ignore[arg-type]
            kind=p.kind,
            offer=p.offer,
            amount=None if p.amount is None else _money(p.amount, currency),
            currency=p.currency,
            refunded_amount=_money(p.refunded_amount, currency),
            credits=p.credits,
            credited=p.credited,
            checkout_session_id=p.checkout_session_id,
            invoice_id=p.invoice_id,
            invoice_url=f"/v1/wallets/{wallet_id}/payments/{p.payment_id}/invoice"
            if has_doc
            else None,
            receipt_url=p.receipt_url,
        )


class PaymentsOut(ResponseBody):
    items: list[PaymentOut]
    next_cursor: str | None


class PaymentsQuery(PageQuery):
    """The same paging as the transactions list."""


def _auto_topup_schema(schema: dict[str, Any]) -> None:
    """For the document: enabling needs a threshold and a pack; a card is named by both its
    customer and its payment method, or by neither."""
    schema["if"] = {"properties": {"enabled": {"const": True}}}
    schema["then"] = not_null("threshold", "pack")
    schema["dependentRequired"] = {
        "customer_id": ["payment_method_id"],
        "payment_method_id": ["customer_id"],
    }


class AutoTopupIn(RequestBody):
    model_config = ConfigDict(json_schema_extra=_auto_topup_schema)

    enabled: StrictBool
    threshold: NonNegativeAmount | None = None  # buy when available falls below this
    pack: Annotated[Name, catalog_names(lambda c: c.topups.packs)] | None = None
    customer_id: StripeId | None = None  # a saved card; default: the last paid checkout's
    payment_method_id: StripeId | None = None


class AutoTopupOut(ResponseBody):
    wallet_id: str
    enabled: bool
    threshold: AmountOut | None
    pack: str | None
    has_payment_method: bool
    state: Literal["armed", "fired", "declined"] | None
    retry_after: Timestamp | None
    last_attempt: dict[str, Any] | None

    @classmethod
    def of(cls, a: AutoTopup) -> AutoTopupOut:
        last = a.last_attempt
        if last is not None:
            last = {k: (int(v) if isinstance(v, Decimal) else v) for k, v in last.items()}
            if "at" in last:
                last["at"] = clock.iso(last["at"] / 1000)
        return cls(
            wallet_id=a.wallet_id,
            enabled=a.enabled,
            threshold=a.threshold,
            pack=a.pack,
            has_payment_method=a.has_payment_method,
            state=a.state,  # type: ignore[arg-type]
            retry_after=a.retry_after,
            last_attempt=last,
        )


class WebhookOut(ResponseBody):
    """The webhook's answer to Stripe (read by nobody but Stripe's delivery log)."""

    received: bool
    handled: bool
    payment_id: str | None = None
    status: str | None = None
