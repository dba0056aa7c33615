"""The internal BYOK path: hands a user's provider key to the platform's own AI calls.

Invoked directly (``lambda:InvokeFunction``, allowed by IAM to the platform's roles only), never
through the HTTP API: ``{"org_id", "user_id", "purpose"}`` → ``{"provider", "api_key"}``, or
``{"error": "byok-not-found"}`` / ``{"error": "invalid-request", "fields": [...]}``. Each key
handed out leaves an audit line in the table (written before the answer) and in the log —
which names who, why and the request, never the key.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from credit_meter.api.byok_models import RevealIn
from credit_meter.byok.keys import Byok
from credit_meter.core.errors import ByokNotFound
from credit_meter.storage.test_clock import with_test_clock

logger = Logger()


def _byok() -> Byok:
    return Byok()


def _fields(error: ValidationError) -> list[dict[str, str]]:
    # include_input=False: a caller's mistaken value is not repeated back (nor logged).
    return [
        {
            "field": ".".join(str(part) for part in e["loc"]) or "event",
            "message": e["msg"].removeprefix("Value error, "),
        }
        for e in error.errors(include_url=False, include_input=False)
    ]


@logger.inject_lambda_context(log_event=False, clear_state=True)
@with_test_clock
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        request = RevealIn.model_validate(event)
    except ValidationError as err:
        fields = _fields(err)
        logger.warning("byok key request refused", extra={"fields": fields})
        return {"error": "invalid-request", "fields": fields}
    who = {
        "org_id": request.org_id,
        "user_id": request.user_id,
        "purpose": request.purpose,
        "request_id": context.aws_request_id,
    }
    try:
        provider, api_key = _byok().reveal(
            request.org_id, request.user_id, request.purpose, context.aws_request_id
        )
    except ByokNotFound:
        logger.info("byok key not found", extra=who)
        return {"error": ByokNotFound.code}
    logger.info("byok key revealed", extra={**who, "provider": provider})
    return {"provider": provider, "api_key": api_key}
