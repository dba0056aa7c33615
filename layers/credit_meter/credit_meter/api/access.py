"""Who may call what: the one place where routes meet roles and scopes.

Authentication happens before the code runs: API Gateway's JWT authorizer checks the token's
signature, expiry, issuer and audience and passes its claims in the event (locally, the
development server does the same with a local key). This module turns those claims into a
:class:`Principal` and decides, from :data:`RULES`, whether it may use a route. It knows nothing
of HTTP beyond the claims' place in the event; the caller maps its errors.

Claims:

* ``sub``: the user (for a user token) or the client (for a client-credentials token). A
  member's usage is attributed by this id: product backends pass it as ``member_id``.
* ``org_id`` (or ``custom:org_id``, as Cognito names custom attributes): the organisation.
* ``role`` (or ``custom:role``): ``owner``, ``admin``, ``member`` or ``viewer``.
* scopes (the ``scope`` claim; API Gateway passes them split): ``credits:meter`` for product
  backends that meter, ``credits:admin`` for the platform's own operations (grants,
  adjustments, promo codes, bypass mode). A resource-server prefix, as Cognito writes it
  (``credit-meter/credits:meter``), is accepted.

Tenancy is checked against the wallet's organisation (see :class:`Tenancy`): a wallet of another
organisation is reported exactly as a wallet that does not exist, so a caller cannot learn that it
exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from credit_meter.api.fields import ID_PATTERN
from credit_meter.core.errors import Forbidden, OrgNotFound, Unauthenticated, no_wallet

if TYPE_CHECKING:
    from credit_meter.storage.store import Store

OWNER, ADMIN, MEMBER, VIEWER = "owner", "admin", "member", "viewer"
ROLES = (OWNER, ADMIN, MEMBER, VIEWER)
METER, PLATFORM = "credits:meter", "credits:admin"
SCOPES = (METER, PLATFORM)

_ORG_CLAIMS = ("org_id", "custom:org_id")
_ORG_ID = re.compile(ID_PATTERN)
_ROLE_CLAIMS = ("role", "custom:role")


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    org: str
    role: str | None
    scopes: frozenset[str]

    @property
    def is_service(self) -> bool:
        """A product backend or the platform (a client-credentials token): no role, a scope."""
        return self.role is None


def _claim(claims: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _scopes(jwt: Mapping[str, Any], claims: Mapping[str, Any]) -> frozenset[str]:
    raw = jwt.get("scopes")
    if not isinstance(raw, list):  # API Gateway passes them split; otherwise the claim
        text = claims.get("scope") or claims.get("scp") or ""
        raw = text.split() if isinstance(text, str) else []
    known = set()
    for scope in raw:
        if isinstance(scope, str):
            name = scope.rsplit("/", 1)[-1]  # a resource server's prefix
            if name in SCOPES:
                known.add(name)
    return frozenset(known)


def principal_of(event: Mapping[str, Any]) -> Principal:
    """The caller, from the JWT authorizer's claims in an API Gateway HTTP API (v2) event.
    A token that names no organisation, or neither a known role nor a known scope, does not
    authenticate anyone here: 401, as without a token."""
    context = event.get("requestContext") or {}
    jwt = (context.get("authorizer") or {}).get("jwt") or {}
    claims = jwt.get("claims") or {}
    subject = claims.get("sub")
    org = _claim(claims, _ORG_CLAIMS)
    if not isinstance(subject, str) or not subject or org is None:
        raise Unauthenticated("a bearer token with sub and org_id claims is required")
    if not _ORG_ID.fullmatch(org):  # the same rule as organisation ids everywhere else
        raise Unauthenticated("the token's org_id is not a valid organisation id")
    role = _claim(claims, _ROLE_CLAIMS)
    scopes = _scopes(jwt, claims)
    if role is not None and role not in ROLES:
        raise Unauthenticated(f"the token's role must be one of {', '.join(ROLES)}")
    if role is None and not scopes:
        raise Unauthenticated("the token carries neither a role nor a credits scope")
    return Principal(subject=subject, org=org, role=role, scopes=scopes)


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may use a route: these roles (for all data of the organisation), these roles for
    their own member data only (``own``: the path's or query's member id is theirs), these
    service scopes, and whether only the user named in the path may (``self_only``)."""

    roles: frozenset[str] = frozenset()
    own: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    self_only: bool = False


def _rule(
    roles: tuple[str, ...] = (),
    own: tuple[str, ...] = (),
    scopes: tuple[str, ...] = (),
    self_only: bool = False,
) -> Rule:
    return Rule(frozenset(roles), frozenset(own), frozenset(scopes), self_only)


_ALL_ROLES = ROLES
_READERS = (OWNER, ADMIN, VIEWER)  # read-only over the organisation's wallets and reports
_MANAGERS = (OWNER, ADMIN)  # limits, alerts, plans, auto top-up, buying
_SERVICES = (METER, PLATFORM)

# Every route of the HTTP API, by API Gateway route key. A route missing here is refused to
# everyone (tests compare this table with the handlers' and the template's routes);
# docs/access.md shows it as a table.
RULES: dict[str, Rule] = {
    # wallets
    "PUT /v1/wallets/{wallet_id}": _rule(_MANAGERS, scopes=(PLATFORM,)),
    "GET /v1/wallets/{wallet_id}": _rule(_ALL_ROLES, scopes=_SERVICES),
    "PUT /v1/wallets/{wallet_id}/bypass": _rule(scopes=(PLATFORM,)),
    # metering: product backends only
    "POST /v1/wallets/{wallet_id}/reservations": _rule(scopes=(METER,)),
    "POST /v1/wallets/{wallet_id}/reservations/{reservation_id}/commit": _rule(scopes=(METER,)),
    "POST /v1/wallets/{wallet_id}/reservations/{reservation_id}/release": _rule(scopes=(METER,)),
    "POST /v1/wallets/{wallet_id}/charges": _rule(scopes=(METER,)),
    "POST /v1/wallets/{wallet_id}/quote": _rule(_ALL_ROLES, scopes=_SERVICES),
    "GET /v1/prices": _rule(_ALL_ROLES, scopes=_SERVICES),
    # credits the platform gives or corrects
    "POST /v1/wallets/{wallet_id}/grants": _rule(scopes=(PLATFORM,)),
    "GET /v1/wallets/{wallet_id}/grants": _rule(_READERS, scopes=_SERVICES),
    "POST /v1/wallets/{wallet_id}/grants/{grant_id}/void": _rule(scopes=(PLATFORM,)),
    "POST /v1/wallets/{wallet_id}/adjustments": _rule(scopes=(PLATFORM,)),
    "POST /v1/promo-codes": _rule(scopes=(PLATFORM,)),
    "POST /v1/wallets/{wallet_id}/referral": _rule(scopes=(PLATFORM,)),
    "POST /v1/wallets/{wallet_id}/transfers": _rule(_MANAGERS, scopes=(PLATFORM,)),
    "POST /v1/wallets/{wallet_id}/redeem": _rule(_MANAGERS, scopes=(PLATFORM,)),
    # reports: members see their own activity only
    "GET /v1/wallets/{wallet_id}/transactions": _rule(_READERS, (MEMBER,), _SERVICES),
    "GET /v1/wallets/{wallet_id}/transactions.csv": _rule(_READERS, (MEMBER,), _SERVICES),
    "GET /v1/wallets/{wallet_id}/usage/summary": _rule(_ALL_ROLES, scopes=_SERVICES),
    "GET /v1/wallets/{wallet_id}/usage": _rule(_READERS, scopes=_SERVICES),
    "GET /v1/orgs/{org_id}/usage": _rule(_READERS, scopes=_SERVICES),
    # buying credits
    "GET /v1/topups/offers": _rule(_ALL_ROLES, scopes=_SERVICES),
    "POST /v1/wallets/{wallet_id}/checkout": _rule(_MANAGERS),
    "GET /v1/wallets/{wallet_id}/payments": _rule(_READERS, scopes=_SERVICES),
    "GET /v1/wallets/{wallet_id}/payments/{payment_id}/invoice": _rule(_READERS, scopes=_SERVICES),
    "PUT /v1/wallets/{wallet_id}/auto-topup": _rule(_MANAGERS),
    "GET /v1/wallets/{wallet_id}/auto-topup": _rule(_READERS, scopes=_SERVICES),
    # controls
    "PUT /v1/wallets/{wallet_id}/limits": _rule(_MANAGERS),
    "GET /v1/wallets/{wallet_id}/limits": _rule(_READERS, scopes=_SERVICES),
    "PUT /v1/wallets/{wallet_id}/alerts": _rule(_MANAGERS),
    "GET /v1/wallets/{wallet_id}/alerts": _rule(_READERS, scopes=_SERVICES),
    "GET /v1/wallets/{wallet_id}/members": _rule(_READERS, scopes=_SERVICES),
    "PUT /v1/wallets/{wallet_id}/members/{member_id}/budget": _rule(_MANAGERS),
    "GET /v1/wallets/{wallet_id}/members/{member_id}/budget": _rule(_READERS, (MEMBER,), _SERVICES),
    # a user's own provider key: nobody else, not even the organisation's owner
    "PUT /v1/users/{user_id}/byok": _rule(self_only=True),
    "GET /v1/users/{user_id}/byok": _rule(self_only=True),
    "DELETE /v1/users/{user_id}/byok": _rule(self_only=True),
    # test clocks: test mode only (otherwise no such route), the platform's alone
    "GET /v1/test-clock": _rule(scopes=(PLATFORM,)),
    "POST /v1/test-clock": _rule(scopes=(PLATFORM,)),
}


@dataclass(frozen=True, slots=True)
class Grant:
    """What a principal was allowed: everything of its organisation on this route, or (``member``
    set) only the data of that member."""

    principal: Principal
    member: str | None = None

    def member_filter(self, asked: str | None) -> str | None:
        """The member whose data a read may return: the one asked for, or for a member, only
        themself (asking for another member is forbidden)."""
        if self.member is None:
            return asked
        if asked is not None and asked != self.member:
            raise Forbidden("members may read their own usage only")
        return self.member


def authorize(principal: Principal, route_key: str, params: Mapping[str, str]) -> Grant:
    """May ``principal`` use the route ``route_key`` (``"GET /v1/wallets/{wallet_id}"``) with
    these path parameters? Decided from the role and scopes alone, never from stored data, so
    the answer does not depend on whether a wallet exists. Raises :class:`Forbidden`."""
    rule = RULES.get(route_key)
    if rule is None:
        raise Forbidden("this route is not open to any caller")
    if rule.self_only:
        if principal.is_service or params.get("user_id") != principal.subject:
            raise Forbidden("only the user themself may do this")
        return Grant(principal)
    if principal.role in rule.roles or principal.scopes & rule.scopes:
        return Grant(principal)
    if principal.role in rule.own:  # only what is the member's own
        named = params.get("member_id")
        if named is not None and named != principal.subject:
            raise Forbidden("members may read their own data only")
        return Grant(principal, member=principal.subject)
    raise Forbidden("your role or scopes do not allow this")


# -- tenancy ----------------------------------------------------------------------------------

# Wallet → organisation, per table, for this process. A wallet's organisation is set once and
# never changes (billing's ``_join_org``: 409 organisation-set), so a positive answer stays
# true; a warm container reads each wallet's organisation once and the hot path (reserve,
# charge) stays at one DynamoDB round trip. A miss or an org-less wallet is never cached: the
# wallet may be created, or adopted, a moment later. Bounded: the oldest entries go first.
_ORG_CACHE_MAX = 10_000
_wallet_orgs: dict[tuple[str, str], str] = {}


def forget_wallet_orgs() -> None:
    """Empty the wallet → organisation cache (tests that start tables again)."""
    _wallet_orgs.clear()


def _remember(key: tuple[str, str], org: str) -> None:
    if len(_wallet_orgs) >= _ORG_CACHE_MAX:
        del _wallet_orgs[next(iter(_wallet_orgs))]  # dicts keep insertion order: the oldest
    _wallet_orgs[key] = org


class Tenancy:
    """Whether the caller's organisation owns what a request names. Anything of another
    organisation answers as if it did not exist (the same error, word for word), so ids of
    other tenants cannot be probed."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            # Imported and made on first use: functions that only authorize (BYOK) do not
            # load the data layer, and TABLE_NAME is read when a request needs it.
            from credit_meter.storage.store import Store

            self._store = Store()
        return self._store

    def wallet(self, principal: Principal, wallet_id: str, *, creating: bool = False) -> None:
        """Raise :class:`WalletNotFound` unless the wallet belongs to the principal's
        organisation. ``creating`` (``PUT /v1/wallets/{id}``): a wallet that does not exist yet
        passes (it is created in the principal's organisation), and one without an
        organisation (made before organisations were required) may be adopted by the
        platform (``credits:admin``) only."""
        key = (self.store.table, wallet_id)
        org = _wallet_orgs.get(key)
        if org is None:
            from credit_meter.storage import wallet_record

            # Read consistently (a wallet created a moment ago must be found), whole: the
            # store has no projection, the item is small, and this happens once per wallet
            # and container.
            item = self.store.get(wallet_record.key(wallet_id))
            if item is None:
                if creating:
                    return
                raise no_wallet(wallet_id)
            org = item.get("org")
            if not isinstance(org, str):
                if creating and PLATFORM in principal.scopes:
                    return
                raise no_wallet(wallet_id)
            _remember(key, org)
        if org != principal.org:
            raise no_wallet(wallet_id)

    def org(self, principal: Principal, org_id: str) -> None:
        """Raise :class:`OrgNotFound` (as the organisation report does for an organisation
        without wallets) unless ``org_id`` is the principal's own."""
        if org_id != principal.org:
            raise OrgNotFound(f"organisation {org_id} has no wallets")
