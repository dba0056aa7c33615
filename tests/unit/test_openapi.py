"""``docs/openapi.yaml`` describes the API as it is: this fails when the two drift apart.

* the component schemas equal those generated from the pydantic models now, and the whole file
  is what ``python -m devtools.openapi`` writes;
* its operations are exactly the routes registered on the Powertools resolvers (the metering
  function's, the BYOK function's and the Stripe webhook's);
* who may call each operation is what ``credit_meter.api.access.RULES`` says: the bearer token on
  all but the webhook, 401 everywhere it applies, 403 exactly where the rule refuses some
  token, and the description's "Who may call:" sentence names the rule's roles and scopes;
* real responses of the handlers are documented for their status and validate against the
  documented schema (401 and 403 of every operation included);
* it is a valid OpenAPI 3.1 document (``openapi-spec-validator``).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import openapi_spec_validator
import pytest
import yaml
from jsonschema import Draft202012Validator

from credit_meter.api import access
from credit_meter.api.routes import base as routes_base
from credit_meter.byok import envelope
from credit_meter.core.errors import Forbidden
from devtools import openapi, stripe_events
from devtools.apigw import FakeContext, http_event
from devtools.fake_stripe import FakeStripe
from tests.principals import DEFAULT, TEST_ORG, org_token, token

DOC_PATH = Path(__file__).parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PROBLEM_SCHEMAS = {
    "#/components/schemas/ProblemOut",
    "#/components/schemas/InsufficientCreditsProblem",
    "#/components/schemas/SpendingLimitProblem",
    "#/components/schemas/UnauthenticatedProblem",
    "#/components/schemas/ForbiddenProblem",
    "#/components/schemas/ForbiddenOrLimitProblem",
}
WEBHOOK = ("POST", "/v1/webhooks/stripe")

Api = Callable[..., tuple[int, dict[str, str], Any]]
Response = tuple[int, dict[str, str], Any]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def byok_app(aws: Any) -> Any:
    """The BYOK function's module (``functions/byok_api/app.py``), imported once the functions'
    environment is set, as conftest's handler fixtures do (it publishes no metrics, so it
    needs no namespace)."""
    return importlib.import_module("byok_api.app")


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


# -- the document is generated from the code -----------------------------------------------


def test_component_schemas_are_the_models_schemas(doc: dict[str, Any]) -> None:
    generated = openapi.model_schemas()
    documented = doc["components"]["schemas"]
    assert {name: documented.get(name) for name in generated} == generated, (
        "docs/openapi.yaml is out of date: run python -m devtools.openapi"
    )


def test_the_file_is_what_the_generator_writes() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == openapi.render(), (
        "docs/openapi.yaml is out of date: run python -m devtools.openapi"
    )
    assert openapi.main(["--check"]) == 0


@pytest.mark.parametrize("stale", ["edited", "missing"])
def test_check_fails_when_the_file_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stale: str
) -> None:
    path = tmp_path / "openapi.yaml"
    if stale == "edited":
        path.write_text(openapi.render().replace("Credit Meter API", "Old API"), encoding="utf-8")
    assert openapi.main(["--check", "--output", str(path)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert openapi.main(["--output", str(path)]) == 0
    assert openapi.main(["--check", "--output", str(path)]) == 0


# -- the document covers the routes -----------------------------------------------------------


def registered_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route on the resolver, with ``<name>`` written ``{name}``."""
    routes = [*app._static_routes, *app._dynamic_routes]
    assert routes, "no routes found on the resolver"
    return {(route.method.upper(), re.sub(r"<(\w+)>", r"{\1}", route.path)) for route in routes}


def test_operations_are_the_registered_routes(
    doc: dict[str, Any], metering_app: Any, byok_app: Any
) -> None:
    # The metering function's routes, the BYOK function's and the Stripe webhook's (each its
    # own function).
    webhook = importlib.import_module("stripe_webhook.app")
    routes = (
        registered_routes(metering_app.app)
        | registered_routes(byok_app.app)
        | registered_routes(webhook.app)
    )
    assert set(operations(doc)) == routes


def test_documented_patterns_are_the_handlers(
    doc: dict[str, Any], metering_app: Any, byok_app: Any
) -> None:
    # The handler matches the whole value (``fullmatch``); a JSON Schema pattern matches
    # anywhere in it, so the document anchors the same expression.
    parameters = doc["components"]["parameters"]
    assert parameters["WalletId"]["schema"]["pattern"] == f"^{routes_base.WALLET_ID.pattern}$"
    assert (
        parameters["IdempotencyKey"]["schema"]["pattern"]
        == f"^{routes_base.IDEMPOTENCY_KEY.pattern}$"
    )
    assert parameters["UserId"]["schema"]["pattern"] == f"^{byok_app.USER_ID.pattern}$"


@pytest.mark.parametrize(
    ("parameter", "value", "valid"),
    [
        ("WalletId", "w1", True),
        ("WalletId", "-w1", False),
        ("WalletId", "w1 ", False),
        ("WalletId", "w" * 129, False),
        ("IdempotencyKey", "order-4711", True),
        ("IdempotencyKey", " order-4711", False),
        ("IdempotencyKey", "my key", False),
        ("IdempotencyKey", "k" * 256, False),
        ("UserId", "ana@example.com", True),
        ("UserId", "u#1", False),
        ("UserId", "u 1", False),
        ("UserId", "u" * 129, False),
        # No trailing line break here: jsonschema uses Python's ``re``, whose ``$`` also
        # matches before one (ECMA-262's, which JSON Schema specifies, does not).
    ],
)
def test_documented_patterns_match_the_whole_value(
    doc: dict[str, Any], parameter: str, value: str, valid: bool
) -> None:
    schema = doc["components"]["parameters"][parameter]["schema"]
    assert Draft202012Validator(schema).is_valid(value) == valid


def test_a_402_problem_is_a_problem_that_says_what_was_available_and_requested(
    doc: dict[str, Any],
) -> None:
    schemas = doc["components"]["schemas"]
    problem = schemas["ProblemOut"]
    assert {"available", "requested"} <= problem["properties"].keys()
    assert not {"available", "requested"} & set(problem["required"])
    insufficient = schemas["InsufficientCreditsProblem"]
    assert insufficient == {
        "allOf": [
            {"$ref": "#/components/schemas/ProblemOut"},
            {"required": ["available", "requested"]},
        ]
    }
    responses = doc["components"]["responses"]
    schema = responses["InsufficientCredits"]["content"]["application/problem+json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/InsufficientCreditsProblem"}


def test_every_path_parameter_is_declared(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        placeholders = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = [
                deref(doc, p) for p in [*item.get("parameters", []), *op.get("parameters", [])]
            ]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == placeholders, (method, path)
            assert all(p["required"] for p in params if p["in"] == "path")


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in set(refs(doc)):
        assert deref(doc, {"$ref": ref}) is not None, ref


def test_posts_that_write_take_an_idempotency_key(doc: dict[str, Any]) -> None:
    for (method, path), op in operations(doc).items():
        names = {deref(doc, p)["name"] for p in op.get("parameters", [])}
        # Quote writes nothing; a void, a promo code's definition and a referral are
        # idempotent by what they name (the grant, the code, the referred wallet).
        # Stripe's webhook: by the event (a payment is credited once, whatever arrives).
        # The test clock's advance is a test's own step (test mode only), never retried.
        natural = (
            "/quote",
            "/void",
            "/promo-codes",
            "/referral",
            "/webhooks/stripe",
            "/test-clock",
        )
        writes = method == "POST" and not path.endswith(natural)
        assert ("Idempotency-Key" in names) == writes, (method, path)


def test_every_operation_documents_its_errors_as_problems(doc: dict[str, Any]) -> None:
    for key, op in operations(doc).items():
        responses = op["responses"]
        assert any(status.startswith(("2", "302")) for status in responses), key
        assert "500" in responses, key
        if key[0] in ("POST", "PUT") and key[1] != "/v1/webhooks/stripe":
            assert {"400", "413", "415", "422"} <= responses.keys(), key
        for status, response in responses.items():
            if status == "302":  # a redirect: no body, a Location
                assert "Location" in response["headers"], key
                continue
            if status == "204":  # no content
                assert "content" not in response, key
                continue
            content = deref(doc, response)["content"]
            if key == ("GET", "/v1/wallets/{wallet_id}/transactions.csv") and status == "200":
                assert content.keys() == {openapi.CSV_MEDIA_TYPE}, key
            elif status.startswith("2"):
                assert content.keys() == {"application/json"}, key
            elif status == "401":  # the function's problem, or API Gateway's own answer
                assert content.keys() == {"application/problem+json", "application/json"}, key
                gateway = content["application/json"]["schema"]
                assert gateway == {"$ref": "#/components/schemas/GatewayUnauthorized"}, key
                assert "WWW-Authenticate" in deref(doc, response)["headers"], key
                schema = content["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/UnauthenticatedProblem"}, key
            else:
                assert content.keys() == {"application/problem+json"}, key
                assert content["application/problem+json"]["schema"]["$ref"] in PROBLEM_SCHEMAS


# -- who may call: the document says what access.RULES says ------------------------------------


def route_key(method: str, path: str) -> str:
    return f"{method} {path}"


def test_every_operation_but_the_webhook_takes_the_bearer_token(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for claim in ("`sub`", "`org_id`", "`custom:org_id`", "`role`", "`custom:role`", "`scope`"):
        assert claim in scheme["description"], claim
    for name in (*access.ROLES, *access.SCOPES):
        assert f"`{name}`" in scheme["description"], name
    assert doc["security"] == [{"bearerAuth": []}]
    for key, op in operations(doc).items():
        if key == WEBHOOK:
            assert op["security"] == [], key  # Stripe signs it instead
            assert {"401", "403"}.isdisjoint(op["responses"]), key
        else:
            assert "security" not in op, key  # the document's: the bearer token
            assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthenticated"}


def test_every_access_rule_is_a_documented_operation(doc: dict[str, Any]) -> None:
    documented = {route_key(*key) for key in operations(doc) if key != WEBHOOK}
    assert documented == set(access.RULES)
    assert route_key(*WEBHOOK) not in access.RULES


WHO = re.compile(r"Who may call: (?P<who>[^\n]*)\Z")


def parse_who(text: str) -> access.Rule:
    """The rule a "Who may call:" sentence states, read back from its words: ``roles `a`,
    `b`; role `member` (members: their own data only); scopes `x`, `y`.``, or only the
    user themself."""
    found = WHO.search(text.strip())
    assert found, f"no closing 'Who may call:' sentence in: {text[-120:]!r}"
    who = found["who"]
    if who.startswith("only the user themself"):
        return access.Rule(self_only=True)
    assert who.endswith("."), who
    roles: set[str] = set()
    own: set[str] = set()
    scopes: set[str] = set()
    for clause in who[:-1].split("; "):
        names = set(re.findall(r"`([^`]+)`", clause))
        if clause.startswith(("roles ", "role ")):
            if clause.endswith("s: their own data only)"):  # "(members: ...)"
                own |= names
            else:
                roles |= names
        elif clause.startswith(("scopes ", "scope ")):
            scopes |= names
        else:
            raise AssertionError(f"unexpected clause {clause!r}")
    return access.Rule(frozenset(roles), frozenset(own), frozenset(scopes))


def test_who_may_call_is_the_access_rule(doc: dict[str, Any]) -> None:
    for (method, path), op in operations(doc).items():
        if (method, path) == WEBHOOK:
            assert "Who may call" not in op["description"]
            continue
        assert parse_who(op["description"]) == access.RULES[route_key(method, path)], (method, path)


def refused_caller(key: str, params: dict[str, str]) -> access.Principal | None:
    """A valid token of ``TEST_ORG`` that ``access.authorize`` refuses on this route, or that it
    allows to its own member data only (a member then asking for another's is refused); None
    if every role and scope may use the route for all of the organisation's data."""
    candidates = [
        *(access.Principal("someone", TEST_ORG, role, frozenset()) for role in access.ROLES),
        *(access.Principal("someone", TEST_ORG, None, frozenset({s})) for s in access.SCOPES),
    ]
    for principal in candidates:
        try:
            grant = access.authorize(principal, key, params)
        except Forbidden:
            return principal
        if grant.member is not None:
            return principal
    return None


def path_params(path: str) -> dict[str, str]:
    """Values for a path's placeholders: the contract test's wallet and organisation."""
    values = {"wallet_id": "w1", "org_id": TEST_ORG, "member_id": "m-1", "user_id": "ana"}
    return {name: values.get(name, "x1") for name in re.findall(r"{(\w+)}", path)}


def test_403_is_documented_where_the_rule_refuses_someone(doc: dict[str, Any]) -> None:
    for (method, path), op in operations(doc).items():
        if (method, path) == WEBHOOK:
            continue
        refused = refused_caller(route_key(method, path), path_params(path))
        assert ("403" in op["responses"]) == (refused is not None), (method, path)


def test_a_403_that_may_be_a_spending_limit_accepts_both_problems(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    both = schemas["ForbiddenOrLimitProblem"]["oneOf"]
    assert both == [
        {"$ref": "#/components/schemas/ForbiddenProblem"},
        {"$ref": "#/components/schemas/SpendingLimitProblem"},
    ]
    description = doc["components"]["responses"]["ForbiddenOrOverLimit"]["description"]
    for code in ("forbidden", "spending-limit-reached", "member-budget-reached"):
        assert f"`{code}`" in description
    for (method, path), op in operations(doc).items():
        if path.endswith(("/reservations", "/charges")):  # the debits a limit may refuse
            assert op["responses"].get("403") == {
                "$ref": "#/components/responses/ForbiddenOrOverLimit"
            }, (method, path)


def test_is_a_valid_openapi_3_1_document(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    openapi_spec_validator.validate(doc, cls=openapi_spec_validator.OpenAPIV31SpecValidator)


# -- real responses match the document ------------------------------------------------------


class Contract:
    """Checks each response against the documented response for its operation and status."""

    def __init__(self, doc: dict[str, Any], api: Api) -> None:
        self.doc = doc
        self.api = api
        self.validator = Draft202012Validator
        self.routes = [
            (method, re.compile("^" + re.sub(r"{\w+}", "[^/]+", path) + "$"), op)
            for (method, path), op in operations(doc).items()
        ]
        self.seen: set[tuple[str, int]] = set()

    def schema_errors(self, ref: str, body: Any) -> list[str]:
        schema = {"$ref": ref, "components": self.doc["components"]}
        return [e.message for e in self.validator(schema).iter_errors(body)]

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: Any = None,
        status: int | None = None,
        *,
        as_: Mapping[str, Any] | None = DEFAULT,
    ) -> Any:
        """Call as ``as_`` (a token's claims, None: no token; default: tests.principals')."""
        got, out_headers, payload = self.api(method, path, body, headers, query, as_=as_)
        if status is not None:
            assert got == status, payload
        op = next(op for m, rule, op in self.routes if m == method and rule.match(path))
        documented = op["responses"].get(str(got))
        assert documented is not None, f"{method} {path}: {got} is not documented"
        self.seen.add((op["operationId"], got))
        if got == 302:
            assert out_headers["location"]
            return out_headers["location"]
        if got == 204:
            assert payload is None and "content" not in documented
            return None
        for header in deref(self.doc, documented).get("headers", {}):
            assert header.lower() in out_headers, f"{method} {path}: {got} without {header}"
        content = deref(self.doc, documented)["content"]
        media = out_headers["content-type"]
        assert media in content, f"{method} {path}: {got} as {media} is not documented"
        assert self.schema_errors(content[media]["schema"]["$ref"], payload) == []
        self.seen.add((op["operationId"], got))
        return payload


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    from credit_meter.payments import stripe_gateway

    with FakeStripe() as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.base_url)
        monkeypatch.setenv("STRIPE_API_KEY", "sk_test_contract_fake")
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        stripe_gateway.reset_client()
        yield fake
    stripe_gateway.reset_client()


WEBHOOK_SECRET = "whsec_contract_fake"


def _with_functions(api: Api, byok_app: Any) -> Api:
    """The metering API, the BYOK API and the Stripe webhook (each its own function) behind
    one caller: ``call(method, path, body, headers, query, *, as_)``, ``as_`` the token's
    claims as API Gateway's JWT authorizer passes them (the webhook takes none)."""
    webhook = importlib.import_module("stripe_webhook.app")

    def call(
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: Any = None,
        *,
        as_: Mapping[str, Any] | None = DEFAULT,
    ) -> tuple[int, dict[str, str], Any]:
        if path == "/v1/webhooks/stripe":
            event = http_event(method, path, body, headers)
            handler = webhook.handler
        elif path.startswith("/v1/users/"):
            hdrs = dict(headers or {})
            if body is not None and not isinstance(body, dict):
                hdrs.setdefault("content-type", "application/json")
            event = http_event(method, path, body, hdrs, query, claims=as_)
            handler = byok_app.handler
        else:
            return api(method, path, body, headers, query, as_=as_)
        response = handler(event, FakeContext())
        out = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        raw = response.get("body")
        return response["statusCode"], out, json.loads(raw) if raw else None

    return call


@pytest.fixture
def byok_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The BYOK function seals keys under a local master key file (no KMS here)."""
    monkeypatch.delenv(envelope.KEY_ID_ENV, raising=False)
    monkeypatch.setenv(envelope.LOCAL_KEY_FILE_ENV, str(tmp_path / "byok-master.key"))


@pytest.mark.usefixtures("fresh_table", "byok_keys")
def test_responses_validate_against_the_document(
    doc: dict[str, Any],
    api: Api,
    byok_app: Any,
    project_ledger: Callable[[], None],
    fake_stripe: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_MODE", "true")  # the test clock's routes exist in test mode only
    call = Contract(doc, _with_functions(api, byok_app))
    w = "/v1/wallets/w1"
    hold = {"feature": "chat", "member_id": "m-1", "credits": "2.5"}

    call("PUT", w, {"plan": "free"}, status=201)
    call("PUT", w, {"plan": "trial"}, status=200)  # a downgrade: pending until the reset
    call("PUT", "/v1/wallets/e1", {"plan": "enterprise"}, status=422)
    call("GET", w, status=200)
    call("GET", "/v1/wallets/nobody", status=404)
    rid = call("POST", f"{w}/reservations", hold, {"Idempotency-Key": "k1"}, status=201)[
        "reservation_id"
    ]
    call(
        "POST", f"{w}/reservations", {**hold, "credits": "3"}, {"Idempotency-Key": "k1"}, status=409
    )
    call("POST", f"{w}/reservations", {**hold, "credits": "1000"}, status=402)
    call("POST", f"{w}/reservations", "[]", status=400)
    call("POST", f"{w}/reservations", "feature=chat", {"content-type": "text/plain"}, status=415)
    call("POST", f"{w}/reservations", "x" * 17000, status=413)
    call("POST", f"{w}/reservations/{rid}/commit", {"credits": "1"}, status=200)
    call("POST", f"{w}/reservations/{rid}/release", status=409)
    call("POST", f"{w}/reservations/rsv_nothing/commit", status=404)
    other = call(
        "POST",
        f"{w}/reservations",
        {"feature": "chat", "usage": [{"meter": "input_tokens", "quantity": 1500, "model": "o3"}]},
        status=201,
    )
    call("POST", f"{w}/reservations/{other['reservation_id']}/release", status=200)
    call("POST", f"{w}/charges", {"feature": "chat", "credits": 1.25}, status=201)
    call("POST", f"{w}/charges", {"feature": "chat", "credits": "99"}, status=402)
    call("POST", f"{w}/quote", {"usage": [{"meter": "image_hd", "quantity": 2}]}, status=200)
    call(
        "POST",
        f"{w}/grants",
        {"credits": "5", "source": "promo", "expires_at": "2099-01-01T00:00:00Z"},
        status=201,
    )
    call("POST", f"{w}/grants", {"credits": "5", "source": "purchase"}, status=201)
    call("POST", f"{w}/grants", {"credits": "5", "source": "lottery"}, status=422)
    call("POST", f"{w}/adjustments", {"credits": "-1", "reason": "refund"}, status=201)
    call("POST", f"{w}/adjustments", {"credits": "0", "reason": "x"}, status=422)
    call("PUT", "/v1/wallets/w2", {"plan": "trial", "anchor_day": 31}, status=201)
    call("POST", f"{w}/transfers", {"to_wallet_id": "w2", "credits": "1"}, status=201)
    call("POST", f"{w}/transfers", {"to_wallet_id": "w2", "credits": "1e9"}, status=422)
    call("POST", f"{w}/transfers", {"to_wallet_id": "w2", "credits": "100000"}, status=402)
    call("POST", f"{w}/transfers", {"to_wallet_id": "nobody", "credits": "1"}, status=404)
    call("POST", "/v1/promo-codes", {"code": "spring", "credits": "7"}, status=201)
    call("POST", "/v1/promo-codes", {"code": "SPRING", "credits": "7"}, status=200)
    call("POST", "/v1/promo-codes", {"code": "SPRING", "credits": "8"}, status=409)
    promo = call("POST", f"{w}/redeem", {"code": "Spring"}, status=201)
    call("POST", f"{w}/redeem", {"code": "spring"}, status=409)
    call("POST", f"{w}/redeem", {"code": "nothing"}, status=404)
    call("POST", "/v1/wallets/w2/referral", {"referrer_wallet_id": "w1"}, status=201)
    call("POST", "/v1/wallets/w2/referral", {"referrer_wallet_id": "w2"}, status=422)
    project_ledger()
    grants = call("GET", f"{w}/grants", query={"limit": "2"}, status=200)
    assert grants["next_cursor"] and len(grants["items"]) == 2
    call("GET", f"{w}/grants", query={"cursor": grants["next_cursor"]}, status=200)
    call("POST", f"{w}/grants/{promo['grant_id']}/void", status=200)
    call("POST", f"{w}/grants/grt_00000000000000000000000/void", status=404)
    page = call("GET", f"{w}/transactions", query={"limit": "2"}, status=200)
    assert page["next_cursor"] and len(page["items"]) == 2
    call("GET", f"{w}/transactions", query={"cursor": page["next_cursor"]}, status=200)
    call("GET", f"{w}/transactions", query={"limit": "0"}, status=422)
    call("GET", "/v1/prices", status=200)

    # usage reports
    call("PUT", "/v1/wallets/w3", {"plan": "free", "org_id": TEST_ORG}, status=201)
    call("PUT", "/v1/wallets/w3", {"plan": "free", "org_id": "org-2"}, status=422)
    usage = [{"meter": "output_tokens", "quantity": 1000, "model": "o3"}]
    call("POST", "/v1/wallets/w3/charges", {"feature": "chat", "usage": usage}, status=201)
    project_ledger()
    call("GET", "/v1/wallets/w3/usage/summary", status=200)
    call("GET", "/v1/wallets/w3/usage/summary", query={"x": "1"}, status=422)
    call("GET", "/v1/wallets/w3/usage", query={"group_by": "category"}, status=200)
    call("GET", "/v1/wallets/w3/usage", query={"granularity": "month", "from": "x"}, status=422)
    call("GET", "/v1/wallets/nobody/usage", status=404)
    call("GET", f"{w}/transactions", query={"type": "charge", "limit": "1"}, status=200)
    call("GET", f"{w}/transactions.csv", query={"limit": "2"}, status=200)
    call("GET", f"/v1/orgs/{TEST_ORG}/usage", status=200)
    call("GET", "/v1/orgs/org-9/usage", status=404)  # another organisation: as if none

    # top-ups: a checkout at the Stripe stand-in, paid, announced by a signed webhook
    call("GET", "/v1/topups/offers", status=200)
    urls = {"success_url": "https://example.com/ok", "cancel_url": "https://example.com/no"}
    session = call("POST", f"{w}/checkout", {"pack": "pack_500", **urls}, status=201)
    call("POST", f"{w}/checkout", {"pack": "pack_1", **urls}, status=422)
    paid = fake_stripe.complete_checkout(session["checkout_session_id"])
    event = stripe_events.encode(stripe_events.event("checkout.session.completed", paid))
    signed = {"stripe-signature": stripe_events.sign(event, WEBHOOK_SECRET)}
    hook = "/v1/webhooks/stripe"
    call("POST", hook, event.decode(), {"content-type": "application/json", **signed}, status=200)
    call("POST", hook, event.decode(), {"content-type": "application/json"}, status=400)
    payments = call("GET", f"{w}/payments", status=200)
    assert [p["status"] for p in payments["items"]] == ["paid"]
    call("GET", f"{w}/payments/{payments['items'][0]['payment_id']}/invoice", status=302)
    call("GET", f"{w}/payments/pi_unknown/invoice", status=404)
    topup = {"enabled": True, "threshold": "10", "pack": "pack_500"}
    call("PUT", f"{w}/auto-topup", topup, status=422)  # no saved card yet
    card = {"customer_id": "cus_contract", "payment_method_id": "pm_card_visa"}
    call("PUT", f"{w}/auto-topup", {**topup, **card}, status=200)
    call("GET", f"{w}/auto-topup", status=200)

    # limits, alerts and member budgets
    call("PUT", f"{w}/limits", {"alert_threshold": "5", "allowed_limit": "8"}, status=200)
    call("PUT", f"{w}/limits", {"alert_threshold": "9", "allowed_limit": "8"}, status=422)
    call("GET", f"{w}/limits", status=200)
    call("POST", f"{w}/charges", {"feature": "chat", "credits": "50"}, status=403)
    call("PUT", f"{w}/limits", {}, status=200)
    call(
        "PUT",
        f"{w}/alerts",
        {"thresholds": [{"type": "remaining_credits", "value": 5}]},
        status=200,
    )
    call(
        "PUT", f"{w}/alerts", {"thresholds": [{"type": "consumed_percent", "value": 0}]}, status=422
    )
    call("GET", f"{w}/alerts", status=200)
    call("PUT", f"{w}/members/m-1/budget", {"budget": "1"}, status=200)
    call("PUT", f"{w}/members/m-1/budget", {}, status=422)
    call("GET", f"{w}/members/m-1/budget", status=200)
    call("GET", f"{w}/members/m-2/budget", status=404)
    call("POST", f"{w}/reservations", {**hold, "credits": "2"}, status=403)
    call("GET", f"{w}/members", status=200)

    # bypass mode: the platform's; the ledger says how an action was billed
    assert call("PUT", f"{w}/bypass", {"enabled": True}, status=200)["bypass"] is True
    call("POST", f"{w}/charges", {"feature": "chat", "credits": "1000"}, status=201)
    assert call("PUT", f"{w}/bypass", {"enabled": False}, status=200)["bypass"] is False
    call("PUT", f"{w}/bypass", {"enabled": "yes"}, status=422)
    project_ledger()
    page = call("GET", f"{w}/transactions", query={"type": "charge", "limit": "1"}, status=200)
    assert page["items"][0]["billing"] == "bypass"
    call("GET", f"{w}/transactions.csv", query={"limit": "1"}, status=200)

    # who may call: another organisation's wallet does not exist for it; a member reads
    # their own data only; the limit's and the route's 403 are one documented response
    other = org_token("org-other")
    call("GET", w, as_=other, status=404)
    call("PUT", f"{w}/bypass", {"enabled": True}, as_=other, status=404)
    admin = token("admin")
    call("PUT", f"{w}/bypass", {"enabled": True}, as_=admin, status=403)
    member = token("member", sub="m-1")
    call("GET", f"{w}/members/m-1/budget", as_=member, status=200)
    call("GET", f"{w}/members/m-2/budget", as_=member, status=403)
    call("GET", f"{w}/transactions", query={"member_id": "m-2"}, as_=member, status=403)
    call("POST", f"{w}/charges", {"feature": "chat", "credits": "1"}, as_=admin, status=403)

    # BYOK: a user's own provider key, for that user only; never shown again
    ana = token("member", sub="ana")
    byok = "/v1/users/ana/byok"
    secret = "sk-test-FAKE-contract-0000"
    stored = call("PUT", byok, {"provider": "openai", "api_key": secret}, as_=ana, status=200)
    assert stored["last4"] == secret[-4:] and secret not in json.dumps(stored)
    call("PUT", byok, {"provider": "openai", "api_key": "short"}, as_=ana, status=422)
    call("PUT", byok, "[]", as_=ana, status=400)
    assert call("GET", byok, as_=ana, status=200) == stored
    call("GET", byok, as_=token("owner"), status=403)
    call("DELETE", byok, as_=ana, status=204)
    call("GET", byok, as_=ana, status=404)

    # a deployment without Stripe keys refuses to sell, and takes no Stripe events
    monkeypatch.setenv("TOPUPS_ENABLED", "false")
    call("POST", f"{w}/checkout", {"pack": "pack_500", **urls}, status=501)
    call("PUT", f"{w}/auto-topup", {**topup, **card}, status=501)
    call("POST", hook, event.decode(), {"content-type": "application/json", **signed}, status=501)
    monkeypatch.delenv("TOPUPS_ENABLED")

    # test clocks: a month passes, the schedules run
    call("GET", "/v1/test-clock", status=200)
    call("POST", "/v1/test-clock", {"advance_seconds": 31 * 86400}, status=200)
    call("POST", "/v1/test-clock", {"advance_seconds": 0}, status=422)

    # every operation answers 401 without a token (the function's problem, with its
    # WWW-Authenticate) and 403 to a token its rule refuses, as documented
    for method, path in operations(doc):
        if (method, path) == WEBHOOK:
            continue
        params = path_params(path)
        concrete = path.format(**params)
        call(method, concrete, as_=None, status=401)
        refused = refused_caller(route_key(method, path), params)
        if refused is None:
            continue
        claims = token(refused.role, scopes=refused.scopes, sub=refused.subject)
        query = None
        if refused.role in access.RULES[route_key(method, path)].own and "member_id" not in params:
            query = {"member_id": "someone-else"}  # a member asking for another's data
        problem = call(method, concrete, query=query, as_=claims, status=403)
        assert problem["type"] == "/problems/forbidden", (method, path)

    # every operation was seen answering with success, and with each of 401 and 403 it
    # documents
    successes = {op for op, status in call.seen if status < 300 or status == 302}
    assert successes == {op["operationId"] for op in operations(doc).values()}
    for op in operations(doc).values():
        for status in (401, 403):
            if str(status) in op["responses"]:
                assert (op["operationId"], status) in call.seen, (op["operationId"], status)

    # an unknown route is a problem document too
    status, headers, problem = api("GET", "/v1/nowhere")
    assert (status, headers["content-type"]) == (404, "application/problem+json")
    assert call.schema_errors("#/components/schemas/ProblemOut", problem) == []
