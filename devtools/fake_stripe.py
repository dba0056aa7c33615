"""A stand-in for the part of Stripe's HTTP API the service uses, so tests and the local server
never reach Stripe.

It speaks Stripe's wire format to the real client::

    with FakeStripe() as fake:
        client = stripe.StripeClient(
            "sk_test_local_fake", base_addresses={"api": fake.base_url}, max_network_retries=0
        )
        session = client.v1.checkout.sessions.create(params={...})
        fake.complete_checkout(session.id)  # the customer pays

Stripe's endpoints (``Authorization: Bearer sk_test_…`` required, errors in Stripe's shape,
``Idempotency-Key`` honoured as Stripe does):

* ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}`` (and ``…/line_items``);
* ``POST /v1/payment_intents`` (``confirm=true`` charges at once: the test cards of
  :data:`devtools.stripe_events.DECLINES` answer 402 ``card_error``, any other payment method
  succeeds), ``GET /v1/payment_intents/{id}``;
* ``GET /v1/charges/{id}``, ``GET /v1/invoices/{id}``, ``GET /v1/customers/{id}``;
* ``expand[]`` of the ids these objects hold (``payment_intent``, ``latest_charge``,
  ``invoice``, ``customer``, and a session's ``line_items``).

What a customer or Stripe's back office would do is done by methods
(:meth:`FakeStripe.complete_checkout`, :meth:`FakeStripe.settle_checkout`,
:meth:`FakeStripe.refund_charge`) and, for tools in another process, by ``POST /_test/…``
endpoints, which are not part of Stripe's API. The pages a
customer would open (``/checkout/{id}``, ``/invoices/{id}``, ``/invoices/{id}.pdf``,
``/receipts/{id}``) answer with placeholders.

Nothing is sent to webhook endpoints: ``devtools.stripe_webhook`` (or a test, with
:mod:`devtools.stripe_events`) posts the events. Run on its own with
``python -m devtools.fake_stripe [--port 12111]``.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from devtools import stripe_events as se

Json = dict[str, Any]

HOST = "127.0.0.1"
DEFAULT_PORT = 12111
TEST_API_KEY = "sk_test_local_fake"  # any sk_test_… key is accepted

_CHECKOUT_MODES = ("payment", "setup", "subscription")
_MAX_IDEMPOTENCY_KEY = 255

# Request parameters Stripe accepts (top level), from the pinned client's parameter types.
_SESSION_PARAMS = frozenset(
    {
        "adaptive_pricing",
        "after_expiration",
        "allow_promotion_codes",
        "allowed_payment_method_types",
        "automatic_tax",
        "billing_address_collection",
        "branding_settings",
        "cancel_url",
        "client_reference_id",
        "consent_collection",
        "currency",
        "custom_fields",
        "custom_text",
        "customer",
        "customer_account",
        "customer_creation",
        "customer_email",
        "customer_update",
        "discounts",
        "excluded_payment_method_types",
        "expand",
        "expires_at",
        "integration_identifier",
        "invoice_creation",
        "line_items",
        "locale",
        "managed_payments",
        "metadata",
        "mode",
        "name_collection",
        "optional_items",
        "origin_context",
        "payment_intent_data",
        "payment_method_collection",
        "payment_method_configuration",
        "payment_method_data",
        "payment_method_options",
        "payment_method_types",
        "permissions",
        "phone_number_collection",
        "redirect_on_completion",
        "return_url",
        "saved_payment_method_options",
        "setup_intent_data",
        "shipping_address_collection",
        "shipping_options",
        "submit_type",
        "subscription_data",
        "success_url",
        "tax_id_collection",
        "ui_mode",
        "wallet_options",
    }
)
_PAYMENT_INTENT_PARAMS = frozenset(
    {
        "allowed_payment_method_types",
        "amount",
        "amount_details",
        "application_fee_amount",
        "automatic_payment_methods",
        "capture_method",
        "confirm",
        "confirmation_method",
        "confirmation_token",
        "currency",
        "customer",
        "customer_account",
        "description",
        "error_on_requires_action",
        "excluded_payment_method_types",
        "expand",
        "hooks",
        "mandate",
        "mandate_data",
        "metadata",
        "off_session",
        "on_behalf_of",
        "payment_details",
        "payment_method",
        "payment_method_configuration",
        "payment_method_data",
        "payment_method_options",
        "payment_method_types",
        "radar_options",
        "receipt_email",
        "return_url",
        "setup_future_usage",
        "shipping",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_data",
        "transfer_group",
        "use_stripe_sdk",
    }
)
_RETRIEVE_PARAMS = frozenset({"expand"})


# --------------------------------------------------------------------------
# Errors and requests
# --------------------------------------------------------------------------


class StripeError(Exception):
    """An error answer of the API: HTTP ``status`` and Stripe's ``{"error": {...}}`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: Json | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}

    def body(self) -> Json:
        error: Json = {}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        error["message"] = self.message
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        error["type"] = self.type
        return {"error": error}


def _missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def _no_such(kind: str, object_id: str, param: str | None = None) -> StripeError:
    return StripeError(
        404 if param is None else 400,
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param or "id",
    )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received, and the status it answered."""

    method: str
    path: str
    params: Json  # query and body parameters, brackets parsed into dicts and lists
    headers: dict[str, str]  # names in lower case
    idempotency_key: str | None
    status: int


@dataclass(frozen=True, slots=True)
class _Saved:
    """An answer kept under an idempotency key."""

    endpoint: str
    params: Json
    status: int
    body: Json


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Form bodies
# --------------------------------------------------------------------------

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def parse_form(pairs: Iterable[tuple[str, str]]) -> Json:
    """Parameters in Stripe's bracket notation as nested dicts and lists:
    ``[("metadata[wallet_id]", "w1"), ("line_items[0][quantity]", "1")]`` →
    ``{"metadata": {"wallet_id": "w1"}, "line_items": [{"quantity": "1"}]}``. Values stay
    strings; ``key[]`` appends. A dict whose keys are all indexes becomes a list, except the
    keys of a ``metadata`` dict. Raises ``ValueError`` for keys that contradict each other."""
    root: Json = {}
    for key, value in pairs:
        match = _KEY.fullmatch(key)
        parts = [match.group(1), *_SEGMENT.findall(match.group(2))] if match else [key]
        node = root
        for depth, part in enumerate(parts):
            name = str(len(node)) if part == "" else part
            if depth == len(parts) - 1:
                if isinstance(node.get(name), dict):
                    raise ValueError(f"Invalid value for {key}: expected a hash")
                node[name] = value
                break
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise ValueError(f"Invalid hash for {key}")
            node = child
    converted = _listify(root, None)
    assert isinstance(converted, dict)
    return converted


def _form_values(value: Any) -> Any:
    """A JSON body's values as a form would carry them (strings; ``true``/``false``)."""
    if isinstance(value, dict):
        return {str(k): _form_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_form_values(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if value is None or isinstance(value, str) else str(value)


def _listify(value: Any, key: str | None) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v, k) for k, v in value.items()}
    if key not in (None, "metadata") and converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _str(
    params: Json, name: str, param: str | None = None, *, required: bool = False
) -> str | None:
    value = params.get(name)
    param = param or name
    if value is None or value == "":
        if required:
            raise _missing(param)
        return None
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {param}", param=param)
    return value


def _int(
    params: Json, name: str, param: str | None = None, *, required: bool = False
) -> int | None:
    text = _str(params, name, param, required=required)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise StripeError(
            400,
            f"Invalid integer: {text}",
            code="parameter_invalid_integer",
            param=param or name,
        ) from None


def _bool(params: Json, name: str, param: str | None = None, *, default: bool = False) -> bool:
    text = _str(params, name, param)
    if text is None:
        return default
    if text not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {text}", param=param or name)
    return text == "true"


def _hash(params: Json, name: str, param: str | None = None) -> Json:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, f"Invalid hash: {param or name}", param=param or name)
    return value


def _metadata(params: Json, param: str = "metadata") -> dict[str, str]:
    meta = _hash(params, "metadata", param)
    if len(meta) > 50:
        raise StripeError(400, "Metadata can have at most 50 keys.", param=param)
    for key, value in meta.items():
        if len(key) > 40:
            raise StripeError(
                400, f"Metadata keys can have up to 40 characters: {key}", param=f"{param}[{key}]"
            )
        if not isinstance(value, str) or len(value) > 500:
            raise StripeError(
                400,
                f"Metadata values can have up to 500 characters: {param}[{key}]",
                param=f"{param}[{key}]",
            )
    # An empty value unsets a key in Stripe; on a new object it simply isn't there.
    return {k: v for k, v in meta.items() if v != ""}


def _known(params: Json, allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


# --------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------

_Action = Callable[[tuple[str, ...], Json], Json]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    action: _Action
    api: bool  # a Stripe API route: needs an API key, honours idempotency keys


class FakeStripe:
    """A fake Stripe API on ``127.0.0.1`` (``port=0``: any free port). ``start()``/``stop()``
    or ``with FakeStripe() as fake: ...``.

    ``requests`` holds every request received, in order (appended under a lock). Objects are
    kept in memory; the accessors return copies. ``clock`` (epoch seconds) sets ``created``
    and friends."""

    def __init__(
        self,
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
        on_event: Callable[[str, Json], None] | None = None,
    ) -> None:
        # Called with (event type, object) for what Stripe would announce by webhook on its
        # own: the outcome of a PaymentIntent confirmed through the API (auto top-ups).
        self.on_event = on_event
        self._port = port
        self._clock = clock
        self._verbose = verbose
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self._objects: dict[str, Json] = {}
        self._line_items: dict[str, list[Json]] = {}
        self._payment_intent_data: dict[str, Json] = {}
        self._prices: dict[str, Json] = {}
        self._idempotency: dict[tuple[str, str], _Saved] = {}
        self._routes = self._make_routes()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server((HOST, self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-stripe", kwargs={"poll_interval": 0.1}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is not None:
            return int(self._server.server_address[1])
        if self._port:
            return self._port
        raise RuntimeError("FakeStripe is not started: its port is not chosen yet")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the client's ``base_addresses={"api": ...}``."""
        return f"http://{HOST}:{self.port}"

    # -- objects -------------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _get(self, object_id: str, kind: str) -> Json:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise KeyError(object_id)
        return obj

    def _copy(self, object_id: str, kind: str) -> Json:
        with self._lock:
            return copy.deepcopy(self._get(object_id, kind))

    def checkout_session(self, session_id: str) -> Json:
        """The stored Checkout Session (a copy); ``KeyError`` when unknown."""
        return self._copy(session_id, "checkout.session")

    def payment_intent(self, payment_intent_id: str) -> Json:
        """The stored PaymentIntent (a copy); ``KeyError`` when unknown."""
        return self._copy(payment_intent_id, "payment_intent")

    def charge(self, charge_id: str) -> Json:
        """The stored Charge (a copy); ``KeyError`` when unknown."""
        return self._copy(charge_id, "charge")

    def invoice(self, invoice_id: str) -> Json:
        """The stored Invoice (a copy); ``KeyError`` when unknown."""
        return self._copy(invoice_id, "invoice")

    def customer(self, customer_id: str) -> Json:
        """The stored Customer (a copy); ``KeyError`` when unknown."""
        return self._copy(customer_id, "customer")

    def add_price(
        self, unit_amount: int, currency: str = "usd", *, product_name: str = "Credits"
    ) -> str:
        """Register a one-time Price, for line items given as ``price`` rather than
        ``price_data``; returns its id."""
        price = self._price(unit_amount, currency, product_name)
        with self._lock:
            self._prices[price["id"]] = price
        return str(price["id"])

    def _price(self, unit_amount: int, currency: str, product_name: str) -> Json:
        return {
            "id": se.new_id("price"),
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": self._now(),
            "currency": currency,
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": se.new_id("prod", 14),
            "recurring": None,
            "tax_behavior": "unspecified",
            "type": "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
            "_product_name": product_name,
        }

    def _new_customer(self, email: str | None) -> str:
        cus_id = se.new_id("cus", 14)
        self._objects[cus_id] = {
            "id": cus_id,
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": self._now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "email": email,
            "invoice_prefix": cus_id[-8:].upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": {},
            "name": "Demo Buyer",
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        return cus_id

    def _new_charge(self, pi: Json, status: str, payment_method: str | None) -> Json:
        ch_id = se.new_id("ch")
        ch = se.charge(
            id=ch_id,
            payment_intent=pi["id"],
            amount=pi["amount"],
            currency=pi["currency"],
            metadata=pi["metadata"],  # a PaymentIntent's charges carry its metadata
            status=status,
            customer=pi["customer"],
            payment_method=payment_method,
            created=self._now(),
            receipt_url=f"{self.base_url}/receipts/{ch_id}" if status == "succeeded" else None,
        )
        if status == "pending":
            ch["outcome"]["seller_message"] = "Payment is pending."
        self._objects[ch_id] = ch
        return ch

    def _new_invoice(self, session: Json) -> str:
        items = self._line_items.get(session["id"], [])
        description = ", ".join(str(item["description"]) for item in items) or None
        inv = se.invoice(
            customer=session["customer"],
            amount=session["amount_total"],
            currency=session["currency"],
            description=description,
            customer_email=(session["customer_details"] or {}).get("email"),
            base_url=self.base_url,
            created=self._now(),
            metadata=session["invoice_creation"]["invoice_data"]["metadata"],
        )
        self._objects[inv["id"]] = inv
        return str(inv["id"])

    # -- what the customer and Stripe's back office do ---------------------------------------

    def complete_checkout(
        self, session_id: str, *, paid: bool = True, payment_method: str = "pm_card_visa"
    ) -> Json:
        """The customer pays an open Checkout Session, as Stripe records it: the session becomes
        ``complete`` and ``paid`` (``unpaid`` with ``paid=False``: an asynchronous payment still
        processing, see :meth:`settle_checkout`). In ``payment`` mode a PaymentIntent (with
        ``payment_intent_data.metadata``) and its Charge are created, a Customer when
        ``customer_creation`` is ``always``, an invoice is to be created or the payment method
        is saved (``setup_future_usage``), and, once paid, an Invoice if
        ``invoice_creation[enabled]``. Returns the session; raises :class:`StripeError` (404
        unknown, 400 not open)."""
        with self._lock:
            session = self._session_for_update(session_id)
            if session["status"] != "open":
                raise StripeError(
                    400,
                    f"Checkout Session {session_id} is {session['status']}, not open.",
                    code="checkout_session_not_open",
                )
            session["status"] = "complete"
            session["url"] = None
            session["customer_details"] = se.customer_details(
                session["customer_email"] or "buyer@example.com"
            )
            if session["mode"] != "payment":
                # Setup sessions take no payment; subscriptions are not modelled beyond this.
                session["payment_status"] = (
                    "no_payment_required" if session["mode"] == "setup" else "paid"
                )
                return copy.deepcopy(session)

            data = self._payment_intent_data.get(session_id, {})
            needs_customer = (
                session["customer_creation"] == "always"
                or session["invoice_creation"]["enabled"]
                or data.get("setup_future_usage") in ("on_session", "off_session")
            )
            if session["customer"] is None and needs_customer:
                session["customer"] = self._new_customer(session["customer_details"]["email"])
            pi = se.payment_intent(
                id=se.new_id("pi"),
                amount=session["amount_total"],
                currency=session["currency"],
                status="succeeded" if paid else "processing",
                metadata=_metadata(data, "payment_intent_data[metadata]"),
                customer=session["customer"],
                payment_method=payment_method,
                latest_charge="",
                created=self._now(),
                setup_future_usage=data.get("setup_future_usage"),
                description=data.get("description"),
            )
            pi["receipt_email"] = data.get("receipt_email")
            pi["latest_charge"] = self._new_charge(
                pi, "succeeded" if paid else "pending", payment_method
            )["id"]
            self._objects[pi["id"]] = pi
            session["payment_intent"] = pi["id"]
            session["payment_status"] = "paid" if paid else "unpaid"
            if paid and session["invoice_creation"]["enabled"]:
                session["invoice"] = self._new_invoice(session)
            return copy.deepcopy(session)

    def settle_checkout(self, session_id: str, *, succeeded: bool = True) -> Json:
        """The asynchronous payment of a completed, unpaid Checkout Session ends: it succeeds
        (session ``paid``, PaymentIntent ``succeeded``, Charge ``succeeded``, Invoice created if
        enabled) or fails (PaymentIntent ``requires_payment_method`` with a
        ``last_payment_error``, Charge ``failed``; the session stays ``unpaid``). Stripe then
        sends ``checkout.session.async_payment_succeeded`` or ``…_failed``. Returns the
        session; raises :class:`StripeError`."""
        with self._lock:
            session = self._session_for_update(session_id)
            if session["status"] != "complete" or session["payment_status"] != "unpaid":
                raise StripeError(
                    400,
                    f"Checkout Session {session_id} has no payment processing "
                    f"(status {session['status']}, payment_status {session['payment_status']}).",
                )
            pi = self._get(session["payment_intent"], "payment_intent")
            ch = self._get(pi["latest_charge"], "charge")
            fresh = se.charge(
                id=ch["id"],
                payment_intent=pi["id"],
                amount=ch["amount"],
                currency=ch["currency"],
                metadata=ch["metadata"],
                status="succeeded" if succeeded else "failed",
                customer=ch["customer"],
                payment_method=ch["payment_method"],
                created=ch["created"],
                receipt_url=f"{self.base_url}/receipts/{ch['id']}" if succeeded else None,
            )
            ch.clear()
            ch.update(fresh)
            if succeeded:
                pi["status"] = "succeeded"
                pi["amount_received"] = pi["amount"]
                session["payment_status"] = "paid"
                if session["invoice_creation"]["enabled"]:
                    session["invoice"] = self._new_invoice(session)
            else:
                pi["status"] = "requires_payment_method"
                pi["last_payment_error"] = se.card_error(
                    "pm_card_chargeDeclined", charge=ch["id"], customer=pi["customer"]
                )
                pi["last_payment_error"]["payment_method"] = se.card_payment_method(
                    pi["payment_method"] or "pm_card_visa", customer=pi["customer"]
                )
                pi["payment_method"] = None
            return copy.deepcopy(session)

    def refund_charge(self, charge_id: str, amount: int | None = None) -> Json:
        """Refund ``amount`` (by default all that is left) of a succeeded Charge: its
        ``amount_refunded`` grows and ``refunded`` turns true once all is refunded. Returns the
        Charge; raises :class:`StripeError`."""
        with self._lock:
            try:
                ch = self._get(charge_id, "charge")
            except KeyError:
                raise _no_such("charge", charge_id) from None
            if ch["status"] != "succeeded":
                raise StripeError(
                    400, f"Charge {charge_id} has not succeeded: it cannot be refunded."
                )
            left = int(ch["amount"]) - int(ch["amount_refunded"])
            if left <= 0:
                raise StripeError(
                    400,
                    f"Charge {charge_id} has already been refunded.",
                    code="charge_already_refunded",
                )
            amount = left if amount is None else amount
            if amount <= 0:
                raise StripeError(
                    400, "Refund amount must be positive.", code="parameter_invalid_integer"
                )
            if amount > left:
                raise StripeError(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                    f"({left})",
                    code="amount_too_large",
                    param="amount",
                )
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
            re_id = se.new_id("re")
            self._objects[re_id] = {
                "id": re_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": se.new_id("txn"),
                "charge": charge_id,
                "created": self._now(),
                "currency": ch["currency"],
                "destination_details": None,
                "metadata": {},
                "payment_intent": ch["payment_intent"],
                "reason": None,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
            return copy.deepcopy(ch)

    def _session_for_update(self, session_id: str) -> Json:
        try:
            return self._get(session_id, "checkout.session")
        except KeyError:
            raise _no_such("checkout.session", session_id) from None

    # -- the API ---------------------------------------------------------------------------------

    def _make_routes(self) -> list[_Route]:
        def route(method: str, pattern: str, action: _Action, *, api: bool = True) -> _Route:
            return _Route(method, re.compile(pattern), action, api)

        ident = r"([A-Za-z0-9_]+)"
        return [
            route("POST", r"/v1/checkout/sessions", self._create_session),
            route("GET", rf"/v1/checkout/sessions/{ident}", self._retrieve("checkout.session")),
            route("GET", rf"/v1/checkout/sessions/{ident}/line_items", self._list_line_items),
            route("POST", r"/v1/payment_intents", self._create_payment_intent),
            route("GET", rf"/v1/payment_intents/{ident}", self._retrieve("payment_intent")),
            route("GET", rf"/v1/charges/{ident}", self._retrieve("charge")),
            route("GET", rf"/v1/invoices/{ident}", self._retrieve("invoice")),
            route("GET", rf"/v1/customers/{ident}", self._retrieve("customer")),
            # Test helpers, not part of Stripe's API: what the customer or the bank would do.
            route(
                "POST",
                rf"/_test/checkout/sessions/{ident}/complete",
                self._test_complete,
                api=False,
            ),
            route(
                "POST", rf"/_test/checkout/sessions/{ident}/settle", self._test_settle, api=False
            ),
            route("POST", rf"/_test/charges/{ident}/refund", self._test_refund, api=False),
        ]

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        """Answer one HTTP request (``target``: path and query). Used by the HTTP server."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        headers = {k.lower(): v for k, v in headers.items()}
        key = headers.get("idempotency-key")
        try:
            params = parse_form(parse_qsl(split.query, keep_blank_values=True))
            if body:
                if headers.get("content-type", "").startswith("application/json"):
                    loaded = _form_values(json.loads(body))
                    if not isinstance(loaded, dict):
                        raise ValueError("The request body must be a JSON object")
                    params.update(loaded)
                else:
                    params.update(
                        parse_form(
                            parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
                        )
                    )
        except ValueError as err:
            params = {}
            response = _error_response(StripeError(400, str(err)))
        else:
            with self._lock:
                response = self._dispatch(method, path, params, headers, key)
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, params, headers, key, response.status)
            )
        return response

    def _dispatch(
        self, method: str, path: str, params: Json, headers: dict[str, str], key: str | None
    ) -> _Response:
        found: tuple[_Route, tuple[str, ...]] | None = None
        for candidate in self._routes:
            match = candidate.pattern.fullmatch(path)
            if match and candidate.method == method:
                found = (candidate, match.groups())
                break
        if found is None:
            return _error_response(
                StripeError(
                    404,
                    f"Unrecognized request URL ({method}: {path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )
            )
        route, ids = found
        if not route.api:
            return self._run(route, ids, params)

        api_key, problem = _api_key(headers.get("authorization"))
        if problem is not None:
            return _error_response(problem)
        if method != "POST" or key is None:
            return self._run(route, ids, params)

        if len(key) > _MAX_IDEMPOTENCY_KEY:
            return _error_response(
                StripeError(
                    400,
                    f"Idempotency keys can be at most {_MAX_IDEMPOTENCY_KEY} characters long.",
                    param="idempotency_key",
                )
            )
        endpoint = f"{method} {path}"
        saved = self._idempotency.get((api_key, key))
        if saved is not None:
            if saved.endpoint != endpoint:
                return _error_response(
                    StripeError(
                        400,
                        "Keys for idempotent requests can only be used for the same endpoint "
                        f"they were first used for ('{saved.endpoint}' vs '{endpoint}'). Try "
                        f"using a key other than '{key}' if you meant to execute a different "
                        "request.",
                        type="idempotency_error",
                    )
                )
            if saved.params != params:
                return _error_response(
                    StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        type="idempotency_error",
                    )
                )
            replay = _json_response(saved.status, saved.body)
            replay.headers.update({"Idempotency-Key": key, "Idempotent-Replayed": "true"})
            return replay

        response = self._run(route, ids, params)
        response.headers["Idempotency-Key"] = key
        # Stripe keeps the answer of a request that ran (a decline too), not of one it refused.
        if response.status in (200, 402):
            self._idempotency[(api_key, key)] = _Saved(
                endpoint, copy.deepcopy(params), response.status, json.loads(response.body)
            )
        return response

    def _run(self, route: _Route, ids: tuple[str, ...], params: Json) -> _Response:
        try:
            return _json_response(200, route.action(ids, params))
        except StripeError as err:
            return _error_response(err)

    # -- expansion --------------------------------------------------------------------------------

    def _expand(self, obj: Json, params: Json) -> Json:
        paths = params.get("expand", [])
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list):
            raise StripeError(400, "Invalid array: expand", param="expand")
        obj = copy.deepcopy(obj)
        for path in paths:
            self._expand_path(obj, str(path).split("."), str(path))
        return obj

    def _expand_path(self, obj: Json, parts: list[str], whole: str) -> None:
        head, rest = parts[0], parts[1:]
        if head == "line_items" and obj.get("object") == "checkout.session":
            obj["line_items"] = self._line_item_list(obj["id"])
            return
        if head not in obj:
            raise StripeError(400, f"This property cannot be expanded ({whole}).", param="expand")
        value = obj[head]
        if isinstance(value, str):
            target = self._objects.get(value)
            if target is None and value.startswith("pm_"):
                target = se.card_payment_method(value)
            if target is None:
                raise StripeError(
                    400, f"This property cannot be expanded ({whole}).", param="expand"
                )
            value = obj[head] = copy.deepcopy(target)
        if rest and isinstance(value, dict):
            self._expand_path(value, rest, whole)

    def _line_item_list(self, session_id: str) -> Json:
        return {
            "object": "list",
            "data": copy.deepcopy(self._line_items.get(session_id, [])),
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session_id}/line_items",
        }

    # -- endpoints --------------------------------------------------------------------------------

    def _retrieve(self, kind: str) -> _Action:
        def action(ids: tuple[str, ...], params: Json) -> Json:
            _known(params, _RETRIEVE_PARAMS)
            try:
                obj = self._get(ids[0], kind)
            except KeyError:
                raise _no_such(kind, ids[0]) from None
            return self._expand(obj, params)

        return action

    def _list_line_items(self, ids: tuple[str, ...], params: Json) -> Json:
        self._session_for_update(ids[0])
        return self._line_item_list(ids[0])

    def _create_session(self, ids: tuple[str, ...], params: Json) -> Json:
        _known(params, _SESSION_PARAMS)
        mode = _str(params, "mode", required=True)
        if mode not in _CHECKOUT_MODES:
            raise StripeError(
                400,
                f"Invalid mode: must be one of {', '.join(_CHECKOUT_MODES)}",
                code="parameter_invalid_string",  # not Stripe's exact code
                param="mode",
            )
        ui_mode = _str(params, "ui_mode") or "hosted"
        success_url = _str(params, "success_url")
        if ui_mode == "hosted" and success_url is None:
            raise _missing("success_url")
        raw_items = params.get("line_items") or []
        if not isinstance(raw_items, list):
            raise StripeError(400, "Invalid array: line_items", param="line_items")
        if mode in ("payment", "subscription") and not raw_items:
            raise StripeError(
                400,
                f"`line_items` is required in `{mode}` mode.",
                code="parameter_missing",
                param="line_items",
            )
        session_id = se.new_id("cs_test", 58)
        items, currency, total = self._line_items_of(session_id, raw_items)

        customer = _str(params, "customer")
        customer_email = _str(params, "customer_email")
        customer_creation = _str(params, "customer_creation")
        if customer is not None and customer_email is not None:
            raise StripeError(
                400, "You may only specify one of these parameters: customer, customer_email."
            )
        if customer_creation is not None:
            if mode != "payment":
                raise StripeError(
                    400,
                    "`customer_creation` can only be used in `payment` mode.",
                    param="customer_creation",
                )
            if customer is not None:
                raise StripeError(
                    400,
                    "You may only specify one of these parameters: customer, customer_creation.",
                )
            if customer_creation not in ("always", "if_required"):
                raise StripeError(
                    400,
                    "Invalid customer_creation: must be one of always or if_required",
                    param="customer_creation",
                )
        elif mode == "payment" and customer is None:
            customer_creation = "if_required"

        metadata = _metadata(params)
        payment_intent_data = _hash(params, "payment_intent_data")
        if payment_intent_data and mode != "payment":
            raise StripeError(
                400,
                "`payment_intent_data` can only be used in `payment` mode.",
                param="payment_intent_data",
            )
        _metadata(payment_intent_data, "payment_intent_data[metadata]")
        sfu = _str(
            payment_intent_data, "setup_future_usage", "payment_intent_data[setup_future_usage]"
        )
        if sfu not in (None, "on_session", "off_session"):
            raise StripeError(
                400,
                "Invalid payment_intent_data[setup_future_usage]: must be one of on_session or "
                "off_session",
                param="payment_intent_data[setup_future_usage]",
            )
        invoice_creation = _hash(params, "invoice_creation")
        invoice_enabled = False
        if invoice_creation:
            if mode != "payment":
                raise StripeError(
                    400,
                    "`invoice_creation` can only be used in `payment` mode.",
                    param="invoice_creation",
                )
            if "enabled" not in invoice_creation:
                raise _missing("invoice_creation[enabled]")
            invoice_enabled = _bool(invoice_creation, "enabled", "invoice_creation[enabled]")

        created = self._now()
        expires_at = _int(params, "expires_at")
        if expires_at is None:
            expires_at = created + 24 * 3600
        elif not created + 30 * 60 <= expires_at <= created + 24 * 3600:
            raise StripeError(
                400,
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from the "
                "Checkout Session's creation.",
                param="expires_at",
            )
        client_reference_id = _str(params, "client_reference_id")
        if client_reference_id is not None and len(client_reference_id) > 200:
            raise StripeError(
                400,
                "client_reference_id must be at most 200 characters.",
                param="client_reference_id",
            )

        session = se.checkout_session(
            session_id=session_id,
            amount_total=total,
            currency=currency,
            payment_status="unpaid" if mode != "setup" else "no_payment_required",
            status="open",
            customer=customer,
            metadata=metadata,
            mode=mode,
            customer_creation=customer_creation,
            customer_email=customer_email,
            invoice_enabled=invoice_enabled,
            success_url=success_url,
            cancel_url=_str(params, "cancel_url"),
            url=f"{self.base_url}/checkout/{session_id}" if ui_mode == "hosted" else None,
            created=created,
            expires_at=expires_at,
        )
        session["client_reference_id"] = client_reference_id
        session["ui_mode"] = ui_mode
        if invoice_enabled:
            invoice_data = _hash(invoice_creation, "invoice_data")
            session["invoice_creation"]["invoice_data"]["metadata"] = _metadata(
                invoice_data, "invoice_creation[invoice_data][metadata]"
            )
            session["invoice_creation"]["invoice_data"]["description"] = invoice_data.get(
                "description"
            )
        self._objects[session_id] = session
        self._line_items[session_id] = items
        self._payment_intent_data[session_id] = copy.deepcopy(payment_intent_data)
        return self._expand(session, params)

    def _line_items_of(
        self, session_id: str, raw_items: list[Any]
    ) -> tuple[list[Json], str | None, int | None]:
        items: list[Json] = []
        currencies: set[str] = set()
        total = 0
        for i, raw in enumerate(raw_items):
            prefix = f"line_items[{i}]"
            if not isinstance(raw, dict):
                raise StripeError(400, f"Invalid hash: {prefix}", param=prefix)
            quantity = _int(raw, "quantity", f"{prefix}[quantity]", required=True)
            assert quantity is not None
            if quantity < 1:
                raise StripeError(
                    400,
                    "This value must be greater than or equal to 1.",
                    param=f"{prefix}[quantity]",
                )
            price_id = _str(raw, "price", f"{prefix}[price]")
            price_data = _hash(raw, "price_data", f"{prefix}[price_data]")
            if price_id is not None and price_data:
                raise StripeError(
                    400,
                    "You may only specify one of these parameters: price, price_data.",
                    param=f"{prefix}[price]",
                )
            if price_id is not None:
                if price_id not in self._prices:
                    raise _no_such("price", price_id, f"{prefix}[price]")
                price = copy.deepcopy(self._prices[price_id])
            elif price_data:
                price = self._price_from_data(price_data, f"{prefix}[price_data]")
            else:
                raise _missing(f"{prefix}[price]")
            name = price.pop("_product_name")
            currencies.add(price["currency"])
            amount = int(price["unit_amount"]) * quantity
            total += amount
            items.append(
                {
                    "id": se.new_id("li"),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": price["currency"],
                    "description": name,
                    "price": price,
                    "quantity": quantity,
                }
            )
        if len(currencies) > 1:
            raise StripeError(
                400,
                "All line items must have the same currency.",
                param="line_items",
            )
        currency = currencies.pop() if currencies else None
        return items, currency, (total if items else None)

    def _price_from_data(self, data: Json, param: str) -> Json:
        currency = _str(data, "currency", f"{param}[currency]", required=True)
        assert currency is not None
        unit_amount = _int(data, "unit_amount", f"{param}[unit_amount]")
        if unit_amount is None:
            decimal = _str(data, "unit_amount_decimal", f"{param}[unit_amount_decimal]")
            if decimal is None:
                raise _missing(f"{param}[unit_amount]")
            try:
                unit_amount = int(decimal)
            except ValueError:
                raise StripeError(
                    400,
                    "The fake handles whole unit_amount_decimal values only.",
                    param=f"{param}[unit_amount_decimal]",
                ) from None
        if unit_amount < 0:
            raise StripeError(
                400,
                "This value must be greater than or equal to 0.",
                param=f"{param}[unit_amount]",
            )
        product_data = _hash(data, "product_data", f"{param}[product_data]")
        product = _str(data, "product", f"{param}[product]")
        if product is None and not product_data:
            raise _missing(f"{param}[product_data]")
        name = product or _str(product_data, "name", f"{param}[product_data][name]", required=True)
        assert name is not None
        price = self._price(unit_amount, currency.lower(), name)
        if product is not None:
            price["product"] = product
        return price

    def _create_payment_intent(self, ids: tuple[str, ...], params: Json) -> Json:
        _known(params, _PAYMENT_INTENT_PARAMS)
        amount = _int(params, "amount", required=True)
        assert amount is not None
        currency = _str(params, "currency", required=True)
        assert currency is not None
        if amount < 50:
            raise StripeError(
                400,
                f"Amount must be at least 50 {currency.lower()} minor units",
                code="amount_too_small",
                param="amount",
            )
        confirm = _bool(params, "confirm")
        off_session = _str(params, "off_session")
        if off_session is not None and not confirm:
            raise StripeError(
                400,
                "You can only pass `off_session` when `confirm` is `true`.",
                param="off_session",
            )
        payment_method = _str(params, "payment_method")
        customer = _str(params, "customer")
        metadata = _metadata(params)
        sfu = _str(params, "setup_future_usage")
        if sfu not in (None, "on_session", "off_session"):
            raise StripeError(
                400,
                "Invalid setup_future_usage: must be one of on_session or off_session",
                param="setup_future_usage",
            )
        if confirm and payment_method is None:
            raise StripeError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "Specify a payment method and try again.",
                code="payment_intent_unexpected_state",
            )

        pi = se.payment_intent(
            id=se.new_id("pi"),
            amount=amount,
            currency=currency.lower(),
            status="requires_confirmation" if payment_method else "requires_payment_method",
            metadata=metadata,
            customer=customer,
            payment_method=payment_method,
            latest_charge="",
            created=self._now(),
            setup_future_usage=sfu,
            description=_str(params, "description"),
        )
        pi["latest_charge"] = None
        pi["receipt_email"] = _str(params, "receipt_email")
        pi["statement_descriptor_suffix"] = _str(params, "statement_descriptor_suffix")
        self._objects[pi["id"]] = pi
        if not confirm:
            return self._expand(pi, params)

        if payment_method in se.DECLINES:
            ch = self._new_charge(pi, "failed", payment_method)
            error = se.card_error(payment_method, charge=ch["id"], customer=customer)
            pi.update(
                status="requires_payment_method",
                latest_charge=ch["id"],
                last_payment_error=error,
                payment_method=None,
            )
            skip = ("message", "code", "type", "param", "doc_url")
            extra = {k: v for k, v in error.items() if k not in skip}
            extra["payment_intent"] = copy.deepcopy(pi)
            extra["request_log_url"] = f"{self.base_url}/logs/{se.new_id('req', 14)}"
            self._announce("payment_intent.payment_failed", pi)
            raise StripeError(
                402, error["message"], type="card_error", code=error["code"], extra=extra
            )
        ch = self._new_charge(pi, "succeeded", payment_method)
        pi.update(status="succeeded", amount_received=amount, latest_charge=ch["id"])
        self._announce("payment_intent.succeeded", pi)
        self._announce("charge.succeeded", ch)  # with its receipt_url
        return self._expand(pi, params)

    def _announce(self, event_type: str, obj: Json) -> None:
        if self.on_event is not None:
            self.on_event(event_type, copy.deepcopy(obj))

    # -- test helpers ----------------------------------------------------------------------------

    def _test_complete(self, ids: tuple[str, ...], params: Json) -> Json:
        return self.complete_checkout(
            ids[0],
            paid=_bool(params, "paid", default=True),
            payment_method=_str(params, "payment_method") or "pm_card_visa",
        )

    def _test_settle(self, ids: tuple[str, ...], params: Json) -> Json:
        return self.settle_checkout(ids[0], succeeded=_bool(params, "succeeded", default=True))

    def _test_refund(self, ids: tuple[str, ...], params: Json) -> Json:
        return self.refund_charge(ids[0], _int(params, "amount"))

    # -- pages a customer would open -------------------------------------------------------------

    def _page(self, path: str) -> _Response | None:
        """Placeholder pages for the URLs in the objects (checkout, invoice, receipt)."""
        with self._lock:
            if m := re.fullmatch(r"/checkout/([A-Za-z0-9_]+)", path):
                obj = self._objects.get(m.group(1))
                if obj is None:
                    return None
                return _html_response(
                    f"Checkout {obj['id']}",
                    f"<p>Status {obj['status']}, payment {obj['payment_status']}: "
                    f"{obj['amount_total']} {obj['currency']} (minor units).</p>"
                    f"<p>This is a stand-in for Stripe Checkout. Pay with "
                    f'<code>make webhook ARGS="pay {obj["id"]}"</code>.</p>',
                )
            if m := re.fullmatch(r"/invoices/([A-Za-z0-9_]+)\.pdf", path):
                obj = self._objects.get(m.group(1))
                if obj is None:
                    return None
                text = f"Invoice {obj['number']}: {obj['amount_paid']} {obj['currency']}"
                return _Response(200, _pdf(text), "application/pdf")
            if m := re.fullmatch(r"/(invoices|receipts)/([A-Za-z0-9_]+)", path):
                obj = self._objects.get(m.group(2))
                if obj is None:
                    return None
                return _html_response(
                    f"{obj['object'].title()} {obj['id']}",
                    f"<p>{obj['amount'] if 'amount' in obj else obj['total']} {obj['currency']} "
                    "(minor units).</p>",
                )
        return None


def _api_key(authorization: str | None) -> tuple[str, StripeError | None]:
    if not authorization or not authorization.startswith("Bearer "):
        return "", StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or "
            "we can help at https://support.stripe.com/.",
        )
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith("sk_test_") or len(key) <= len("sk_test_"):
        shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "****"
        return "", StripeError(401, f"Invalid API Key provided: {shown}")
    return key, None


def _json_response(status: int, body: Json) -> _Response:
    return _Response(status, json.dumps(body, indent=2).encode())


def _error_response(err: StripeError) -> _Response:
    return _json_response(err.status, err.body())


def _html_response(title: str, content: str) -> _Response:
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
    )
    return _Response(200, page.encode(), "text/html; charset=utf-8")


def _pdf(text: str) -> bytes:
    """A one-page PDF showing ``text``."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 760 Td ({safe}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStripe


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "stripe"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        page = fake._page(path) if method == "GET" and not path.startswith("/v1/") else None
        if page is not None:
            response = page
        else:
            response = fake._handle(method, self.path, dict(self.headers.items()), body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Request-Id", se.new_id("req", 14))
        self.send_header("Stripe-Version", se.API_VERSION)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake._verbose:
            super().log_message(format, *args)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_stripe",
        description="Run the fake Stripe API on 127.0.0.1 until interrupted.",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    fake = FakeStripe(args.port, verbose=not args.quiet)
    try:
        fake.start()
    except OSError as err:
        print(f"cannot listen on {HOST}:{args.port}: {err}", file=sys.stderr)
        return 1
    print(f"Fake Stripe API on {fake.base_url} (any sk_test_… key; Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
