"""The BYOK HTTP API: a user sets, sees and removes their own AI provider key.

``PUT|GET|DELETE /v1/users/{user_id}/byok`` — only the user themself, never a service or
another member (:data:`credit_meter.api.access.RULES`); the organisation is the token's. Each
route: who calls, parse, one call into :mod:`credit_meter.byok.keys`, respond. The key is never in a
response and never logged: no event logging, no resolver debug output, and the body is read
into a model whose key is a ``SecretStr``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from credit_meter.api import access, problems
from credit_meter.api.body import body_text, json_object
from credit_meter.api.byok_models import USER_ID, ByokIn, ByokOut
from credit_meter.api.models import dump
from credit_meter.byok.keys import Byok
from credit_meter.core.errors import FieldProblem, InvalidRequest
from credit_meter.storage.test_clock import with_test_clock

logger = Logger()
# debug=False whatever the environment says: the resolver's debug mode prints whole events.
app = APIGatewayHttpResolver(debug=False)

_ROUTE = "/v1/users/{user_id}/byok"


def _byok() -> Byok:
    return Byok()


def _caller(method: str, user_id: str) -> tuple[str, str]:
    """(organisation, user) of the request: 401 without claims, 403 unless the caller is the
    user in the path, 422 for a user id that cannot be stored."""
    user_id = unquote(user_id)  # the raw path is percent-encoded; the token's sub is not
    principal = access.principal_of(app.current_event.raw_event)
    access.authorize(principal, f"{method} {_ROUTE}", {"user_id": user_id})
    if not USER_ID.fullmatch(user_id):
        raise InvalidRequest([FieldProblem("user_id", "use 1-128 visible ASCII characters but #")])
    logger.append_keys(org_id=principal.org, user_id=user_id)
    return principal.org, user_id


def _body() -> ByokIn:
    event = app.current_event
    text = body_text(event.body, event.is_base64_encoded)
    return ByokIn.model_validate(json_object(text, event.headers.get("content-type")))


def _json(status: int, body: BaseModel) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=dump(body))


@app.put("/v1/users/<user_id>/byok")
def put_byok(user_id: str) -> Response[Any]:
    org, user = _caller("PUT", user_id)
    body = _body()
    view = _byok().put(org, user, body.provider, body.api_key.get_secret_value())
    logger.info("byok key stored", extra={"provider": view.provider})
    return _json(200, ByokOut.of(view))


@app.get("/v1/users/<user_id>/byok")
def get_byok(user_id: str) -> Response[Any]:
    org, user = _caller("GET", user_id)
    return _json(200, ByokOut.of(_byok().get(org, user)))


@app.delete("/v1/users/<user_id>/byok")
def delete_byok(user_id: str) -> Response[Any]:
    org, user = _caller("DELETE", user_id)
    _byok().delete(org, user)
    logger.info("byok key deleted")
    return Response(status_code=204)


# -- errors -----------------------------------------------------------------------------------

problems.install(app, logger)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@with_test_clock
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
