"""The metering API's one router and what its routes share: reading the body, the
idempotency facts, path ids, the answer, and the grant the access middleware made.

Every route module registers on :data:`router`; ``functions/metering_api/app.py`` includes it
in the resolver and runs the access middleware before any route."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel

from credit_meter.api import access
from credit_meter.api.body import body_text, json_object
from credit_meter.api.fields import ID_PATTERN, RequestBody
from credit_meter.api.models import dump
from credit_meter.core.errors import (
    FieldProblem,
    InvalidRequest,
)
from credit_meter.metering.service import Metering, Request

metrics = Metrics()
router = Router()

WALLET_ID = re.compile(ID_PATTERN)  # organisation ids follow the same rule
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
PAYMENT_ID = re.compile(r"pi_[A-Za-z0-9_]{1,250}")
# A member id in a path: as in bodies, less "/" (a path cannot carry it).
MEMBER_ID = re.compile(r"[A-Za-z0-9][\w.:@-]{0,63}")


def metering() -> Metering:
    return Metering()


def valid_wallet(wallet_id: str) -> str:
    if not WALLET_ID.fullmatch(wallet_id):
        raise InvalidRequest([FieldProblem("wallet_id", "use 1-128 letters, digits, _ . : @ -")])
    return wallet_id


def valid_org(org_id: str) -> str:
    if not WALLET_ID.fullmatch(org_id):
        raise InvalidRequest([FieldProblem("org_id", "use 1-128 letters, digits, _ . : @ -")])
    return org_id


def no_query() -> None:
    """Routes without parameters refuse unknown ones, as the others do (422)."""
    unknown = sorted(router.current_event.query_string_parameters or {})
    if unknown:
        raise InvalidRequest(
            [FieldProblem(name, "is not a parameter of this route") for name in unknown]
        )


def valid_member(member_id: str) -> str:
    if not MEMBER_ID.fullmatch(member_id):
        raise InvalidRequest(
            [
                FieldProblem(
                    "member_id", "use 1-64 letters, digits, _ . : @ / - (first a letter or digit)"
                )
            ]
        )
    return member_id


def read_body[Body: BaseModel](model: type[Body], optional: bool = False) -> Body:
    event = router.current_event
    text = body_text(event.body, event.is_base64_encoded)
    raw = json_object(text, event.headers.get("content-type"), optional=optional)
    return model.model_validate(raw)


def idempotent_request(body: RequestBody, route: str) -> Request:
    key = router.current_event.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest(
            [FieldProblem("Idempotency-Key", "use 1-255 visible ASCII characters")]
        )
    return Request(request_hash=body.request_hash(route), idempotency_key=key)


def json_response(status: int, body: BaseModel) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=dump(body))


def count_charged(credits: Decimal, replayed: bool) -> None:
    if not replayed:  # a retry's answer charged nothing new
        metrics.add_metric(name="CreditsCharged", unit=MetricUnit.Count, value=float(credits))


def current_grant() -> access.Grant:
    """What the middleware allowed this request."""
    grant: access.Grant = router.context["grant"]
    return grant
