"""Who the tests call the API as: tokens' claims, as API Gateway's JWT authorizer passes them.

Every request of the test suites carries :data:`DEFAULT` unless a test says otherwise: an
``owner`` of :data:`TEST_ORG` whose token also carries both scopes (``credits:meter`` and
``credits:admin``). No single real caller is both a person and a service, but a role and scopes
both count in ``credit_meter.api.access.authorize``, so this token may use every route of its
organisation — what tests about metering, billing and reports need. Tests about who may do
what (``tests/unit/test_access.py``) use narrower tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

from credit_meter.api.access import METER, PLATFORM
from devtools.apigw import token_claims

TEST_ORG = "org-test"
ALL_SCOPES = (METER, PLATFORM)


def token(
    role: str | None = None,
    *,
    org: str | None = TEST_ORG,
    scopes: Iterable[str] = (),
    sub: str | None = None,
) -> dict[str, str]:
    """The claims of a token with this role and these scopes in ``org`` (None: no org_id
    claim). ``sub`` defaults to a name made of the role (or ``service``) and the org."""
    return token_claims(sub or f"{role or 'service'}@{org}", org, role, scopes)


def org_token(org: str = TEST_ORG) -> dict[str, str]:
    """An owner of ``org`` with both scopes: may use every route on ``org``'s wallets."""
    return token("owner", org=org, scopes=ALL_SCOPES, sub="test-owner")


DEFAULT = org_token()
