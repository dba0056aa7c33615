"""Wallet lifecycle and grants: plans, billing periods and resets, welcome bonuses, promo codes,
referrals, manual adjustments, transfers and voids. No knowledge of API Gateway.

Every write here replaces the wallet's bucket list, so each is guarded by the list's version
(``bver``): read, compute the new list in :mod:`credit_meter.core.wallets`, write on condition that
the version is still the one read, and read again if another bucket change won the race.
Amounts are applied relative to what is stored (``bal = bal + :g``), so metering writes that
land between the read and the write are neither blocked nor lost. ``docs/data-model.md`` lists
every condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from credit_meter.core import clock, periods, wallets
from credit_meter.core.catalog import Catalog, Plan
from credit_meter.core.errors import (
    Conflict,
    Contention,
    FieldProblem,
    GrantNotFound,
    InsufficientCredits,
    InvalidRequest,
    PromoCodeNotFound,
    WalletNotFound,
    no_wallet,
)
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.ids import grant_id, op_key
from credit_meter.core.money import ZERO, fmt
from credit_meter.core.periods import Posting, Rolled
from credit_meter.core.wallets import Bucket, Granted, WalletView
from credit_meter.metering.service import Metering
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import (
    GRANT_RECORD,
    PROMO_RECORD,
    REDEEM_KEY_RECORD,
    TRANSFER_RECORD,
    VOID_RECORD,
)
from credit_meter.storage.pages import decode_cursor, encode_cursor
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Update, WriteRejected

_ATTEMPTS = 10
MAX_GRANT_SECONDS = 100 * 365 * 86400
DAY = 86400
# Grants that cannot be voided: the allowance (it follows the plan), purchases (paid for: taken
# back only by a refund) and transfers (the sender paid for them).
_NOT_VOIDABLE = ("monthly", "rollover", "purchase", "transfer")
# Open grants a wallet may hold. Each is ~95 bytes of the hot wallet item (every metering
# write is billed per started KB of it) and the item must stay far below DynamoDB's 400 KB;
# the allowance, its upgrade and rollover are never refused for it.
MAX_BUCKETS = 32
# Sources only the service itself grants.
_NOT_GRANTABLE = {
    "monthly": "the plan",
    "rollover": "the monthly reset",
    "transfer": "POST /v1/wallets/{id}/transfers",
}


@dataclass(frozen=True, slots=True)
class GrantLine:
    """One grant as the grants list shows it."""

    grant_id: str
    source: str
    credits: Decimal
    remaining: Decimal
    status: str  # active, used, expired, voided
    granted_at: int  # epoch milliseconds
    expires_at: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Advanced:
    """What the reset job did to one wallet."""

    wallet_id: str
    reset: bool  # a new period started
    expired: Decimal  # credits expired (old allowance, period-bound or expired grants)
    granted: Decimal  # the new period's allowance and rollover


@dataclass(frozen=True, slots=True)
class Adjusted:
    adjustment_id: str
    credits: Decimal
    reason: str
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Transferred:
    transfer_id: str
    from_wallet_id: str
    to_wallet_id: str
    credits: Decimal
    grant_id: str
    replayed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Voided:
    grant_id: str
    voided: Decimal


@dataclass(frozen=True, slots=True)
class PromoCode:
    code: str
    credits: Decimal
    expires_at: int | None
    credits_expire_at: int | None
    credits_expire_in_days: int | None
    max_redemptions: int | None
    redeemed: int
    created_at: int  # epoch milliseconds


@dataclass(frozen=True, slots=True)
class Referred:
    wallet_id: str
    referrer_wallet_id: str
    grant: Granted
    referrer_grant: Granted | None  # None once the referrer had its maximum of rewards


@dataclass(frozen=True, slots=True)
class _BucketChange:
    """A write that replaces a wallet's bucket list; what else it sets rides along."""

    buckets: list[Bucket]
    drawn_delta: Decimal
    balance_delta: Decimal
    posts: list[dict[str, Any]]
    period_end: int
    sets: dict[str, Any] = field(default_factory=dict)  # attribute -> value
    removes: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()  # more SET clauses, their values in ``values``
    condition: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # for ``clauses``


def _bucket_update(wallet_id: str, wallet: dict[str, Any], change: _BucketChange) -> Update:
    names = {f"#s{i}": name for i, name in enumerate(change.sets)} | change.names
    values: dict[str, Any] = {
        ":bk": [wallet_record.bucket_item(b) for b in change.buckets],
        ":one": 1,
        ":dd": change.drawn_delta,
        ":g": change.balance_delta,
        ":n": len(change.posts),
        ":posts": change.posts,
        ":due": periods.due_at(change.buckets, change.period_end),
        ":dsh": wallet_record.due_shard(wallet_id),
        ":bver": wallet["bver"],
        **{f":s{i}": value for i, value in enumerate(change.sets.values())},
        **change.values,
    }
    sets = [
        "bk = :bk",
        "bver = bver + :one",
        "drawn = drawn + :dd",
        "bal = bal + :g",
        "avail = avail + :g",
        "seq = seq + :n",
        "posts = :posts",
        "due_at = :due",
        "due_shard = :dsh",
        *(f"#s{i} = :s{i}" for i in range(len(change.sets))),
        *change.clauses,
    ]
    expression = "SET " + ", ".join(sets)
    if change.removes:
        names.update({f"#r{i}": name for i, name in enumerate(change.removes)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(change.removes)))
    condition = "bver = :bver" + (f" AND {change.condition}" if change.condition else "")
    return Update(
        key=wallet_record.key(wallet_id),
        expression=expression,
        condition=condition,
        names=names,
        values=values,
    )


def _grant_post(b: Bucket, at: int, reason: str | None = None) -> dict[str, Any]:
    return wallet_record.posting(
        b.id,
        "grant",
        b.amount,
        "posted",
        at,
        source=b.source,
        bucket_id=b.id,
        expires_at=b.expires_at,
        reason=reason,
    )


def _grant_record(record: dict[str, Any]) -> Granted:
    exp = record.get("exp")
    return Granted(
        record["gid"],
        Decimal(record["credits"]),
        record["src"],
        int(record["pri"]),
        None if exp is None else int(exp),
    )


class Billing(Metering):
    """The metering service plus everything that changes a wallet's buckets. The metering API
    imports this module only for the routes that need it (its cold start stays small)."""

    def _add_bucket(
        self, buckets: list[Bucket], drawn: Decimal, bucket: Bucket, catalog: Catalog
    ) -> wallets.Rebased:
        """wallets.add_bucket, refused when the wallet already holds its maximum of grants."""
        rebased = wallets.add_bucket(buckets, drawn, bucket, catalog)
        if len(rebased.buckets) > MAX_BUCKETS:
            raise Conflict(
                f"the wallet holds {MAX_BUCKETS} grants with credits left; spend or void some "
                "first",
                code="too-many-grants",
            )
        return rebased

    # -- plans -------------------------------------------------------------------------------

    def _plan(self, plan: str, allowance: Decimal | None) -> tuple[Plan, Decimal]:
        terms = self.catalog.plans.get(plan)
        if terms is None:
            raise InvalidRequest([FieldProblem("plan", f"unknown plan {plan!r}")])
        if terms.allowance is None:
            if allowance is None:
                raise InvalidRequest(
                    [FieldProblem("allowance", f"required for the custom plan {plan!r}")]
                )
            return terms, allowance
        if allowance is not None:
            raise InvalidRequest(
                [FieldProblem("allowance", f"plan {plan!r} has a fixed allowance")]
            )
        return terms, terms.allowance

    def _terms_of(self, wallet: dict[str, Any]) -> periods.Terms:
        """The plan of the current period and of the next (a catalog edit applies at reset)."""
        allow = Decimal(wallet["allow"])
        plan = self.catalog.plans.get(wallet["plan"]) or Plan(wallet["plan"], allow)
        if "pn" in wallet:
            next_plan = self.catalog.plans.get(wallet["pn"]) or Plan(wallet["pn"], None)
            next_allowance = Decimal(wallet["pa"])
        else:
            next_plan = plan
            next_allowance = allow if plan.allowance is None else plan.allowance
        return periods.Terms(
            wallet_id=wallet["wallet_id"],
            period_end=int(wallet["pe"]),
            anchor_day=int(wallet.get("anc", 1)),
            plan=plan,
            next_plan=next_plan,
            next_allowance=next_allowance,
        )

    def put_wallet(
        self,
        wallet_id: str,
        plan: str,
        allowance: Decimal | None = None,
        anchor_day: int | None = None,
        org_id: str | None = None,
    ) -> tuple[bool, WalletView]:
        """Create the wallet (True) or change its plan (False).

        An upgrade (a larger allowance) takes effect at once: the difference is granted for the
        rest of the period. A downgrade waits for the next reset (``pending_plan``). Asking for
        the current plan again cancels a pending change. ``org_id`` puts the wallet in an
        organisation, once (with its line in the organisation's list, atomically).
        """
        terms, allow = self._plan(plan, allowance)
        item = self._new_wallet(wallet_id, terms, allow, anchor_day)
        try:
            if org_id is None:
                self.store.put_new(Put(item))
            else:
                item["org"] = org_id
                self.store.transact(Put(item), Put(items.membership(org_id, wallet_id), None))
                if self._byok_flags(org_id, wallet_id):
                    return True, self.get_wallet(wallet_id)
            return True, wallet_record.view(item)
        except WriteRejected:
            pass
        for _ in range(_ATTEMPTS):
            wallet = self._wallet_item(wallet_id)
            if int(wallet["pe"]) <= clock.now_ts():
                # The period ended and the reset job has not run yet: run it first, so the
                # change applies to the period the wallet is really in.
                self.advance(wallet_id)
                continue
            if anchor_day is not None and anchor_day != int(wallet.get("anc", 1)):
                raise InvalidRequest(
                    [FieldProblem("anchor_day", "is set when the wallet is created; it stays")]
                )
            if org_id is not None and wallet.get("org") != org_id:
                self._join_org(wallet_id, wallet, org_id)
            try:
                self._change_plan(wallet_id, wallet, terms, allow)
            except WriteRejected:
                continue  # the buckets changed meanwhile: read again
            return False, self.get_wallet(wallet_id)
        raise Contention("the wallet kept changing; retry the request")

    def _join_org(self, wallet_id: str, wallet: dict[str, Any], org_id: str) -> None:
        """Put an existing wallet in an organisation: once, never into another one."""
        current = wallet.get("org")
        if current is None:
            try:
                self.store.transact(
                    Update(
                        key=wallet_record.key(wallet_id),
                        expression="SET org = :org",
                        condition="attribute_exists(pk) AND attribute_not_exists(org)",
                        values={":org": org_id},
                    ),
                    Put(items.membership(org_id, wallet_id), None),
                )
                self._byok_flags(org_id, wallet_id)
                return
            except WriteRejected as rejected:  # another request set it first
                current = (rejected.old[0] or {}).get("org")
        if current != org_id:
            raise Conflict(  # never names the other organisation
                f"wallet {wallet_id} belongs to another organisation; it does not move",
                code="organisation-set",
            )

    def _byok_flags(self, org_id: str, wallet_id: str) -> int:
        """A wallet that joins an organisation learns which of its members bring their own
        provider key (after its membership line is written: see :mod:`credit_meter.byok.keys` for
        why that order cannot miss a key set meanwhile). Returns how many it learnt."""
        from credit_meter.byok.keys import flags_for_new_member

        return flags_for_new_member(self.store, org_id, wallet_id)

    def set_bypass(self, wallet_id: str, enabled: bool) -> WalletView:
        """Bypass mode, for self-hosted installs: from now on every debit is recorded (with
        its usage lines) at 0 credits, so no balance, limit, budget or alert moves. A
        reservation keeps the mode it was made in until it ends."""
        try:
            self.store.update(
                Update(
                    key=wallet_record.key(wallet_id),
                    expression="SET bp = :on" if enabled else "REMOVE bp",
                    condition="attribute_exists(pk)",
                    values={":on": True} if enabled else {},
                )
            )
        except WriteRejected:
            raise no_wallet(wallet_id) from None
        return self.get_wallet(wallet_id)

    def _change_plan(
        self, wallet_id: str, wallet: dict[str, Any], terms: Plan, allow: Decimal
    ) -> None:
        current = Decimal(wallet["allow"])
        guard = {":bver": wallet["bver"]}
        if wallet["plan"] == terms.name and allow == current:
            if "pn" in wallet:  # back to the current plan: the pending change is off
                self.store.update(
                    Update(
                        key=wallet_record.key(wallet_id),
                        expression="SET bver = bver + :one REMOVE pn, pa, posts",
                        condition="bver = :bver",
                        values={**guard, ":one": 1},
                    )
                )
            return
        if allow <= current:  # a downgrade (or a sideways move): from the next period
            self.store.update(
                Update(
                    key=wallet_record.key(wallet_id),
                    # bver moves too: a reset that read the wallet before this change must
                    # read it again, or it would start the next period on the old plan.
                    expression="SET pn = :plan, pa = :allow, bver = bver + :one REMOVE posts",
                    condition="bver = :bver",
                    values={**guard, ":plan": terms.name, ":allow": allow, ":one": 1},
                )
            )
            return
        at = now_ms()
        pe = int(wallet["pe"])
        gid = grant_id(at, wallet_id, "upgrade", terms.name, str(wallet["ps"]))
        prio = self.catalog.sources["monthly"].priority
        bucket = Bucket(gid, "monthly", allow - current, prio, at, pe)
        rebased = wallets.add_bucket(
            wallet_record.buckets(wallet), Decimal(wallet["drawn"]), bucket, self.catalog
        )
        change = _BucketChange(
            buckets=rebased.buckets,
            drawn_delta=rebased.drawn_delta,
            balance_delta=bucket.amount,
            posts=[_grant_post(bucket, at, f"upgrade to {terms.name}")],
            period_end=pe,
            sets={"plan": terms.name, "allow": allow, "ovr": terms.overage},
            removes=("pn", "pa"),
        )
        self.store.update(_bucket_update(wallet_id, wallet, change))

    def _new_wallet(
        self, wallet_id: str, terms: Plan, allowance: Decimal, anchor_day: int | None
    ) -> dict[str, Any]:
        start, end = wallets.first_period(clock.now(), anchor_day)
        ps, pe = int(start.timestamp()), int(end.timestamp())
        at = now_ms()
        prio = self.catalog.sources["monthly"].priority
        buckets: list[Bucket] = []
        if allowance > 0:
            gid = grant_id(ps * 1000, wallet_id, "monthly", str(ps))
            buckets.append(Bucket(gid, "monthly", allowance, prio, at, pe))
        if terms.welcome_bonus > 0:
            gid = grant_id(at, wallet_id, "welcome")
            welcome = self.catalog.sources["welcome"].priority
            buckets.append(Bucket(gid, "welcome", terms.welcome_bonus, welcome, at))
        posts = [_grant_post(b, at) for b in buckets]
        buckets.sort(key=lambda b: wallets.burn_key(b, self.catalog))
        total = sum((b.amount for b in buckets), ZERO)
        item: dict[str, Any] = {
            **wallet_record.key(wallet_id),
            "kind": "wallet",
            "wallet_id": wallet_id,
            "plan": terms.name,
            "allow": allowance,
            "anc": anchor_day or start.day,
            "ps": ps,
            "pe": pe,
            "bal": total,
            "held": ZERO,
            "avail": total,
            "drawn": ZERO,
            "used": ZERO,
            "lrem": wallet_record.NO_LIMIT_ROOM,
            "seq": len(posts),
            "bver": 1,
            "bk": [wallet_record.bucket_item(b) for b in buckets],
            "hd": {},
            "posts": posts,
            "created": at,
            "due_at": periods.due_at(buckets, pe),
            "due_shard": wallet_record.due_shard(wallet_id),
        }
        if terms.overage:
            item["ovr"] = True
        return item

    # -- the reset job ---------------------------------------------------------------------

    def due_wallets(self) -> Iterator[str]:
        """Every wallet whose period has ended or that has a grant past its expiry."""
        now = Decimal(int(clock.now_ts()))
        for shard in range(wallet_record.DUE_SHARDS):
            for key in self.store.query_index_upto(
                wallet_record.DUE_INDEX, "due_shard", f"D#{shard:02d}", "due_at", now
            ):
                yield items.wallet_id_of(key["pk"])

    def advance(self, wallet_id: str) -> Advanced:
        """Bring one wallet up to now: expire what is past its expiry and, when its period has
        ended, start the next one (periods.roll). One conditional write; safe to run twice or
        concurrently — the second finds nothing left to do."""
        for _ in range(_ATTEMPTS):
            wallet = self.store.get(wallet_record.key(wallet_id))
            if wallet is None:
                return Advanced(wallet_id, False, ZERO, ZERO)
            now = int(clock.now_ts())
            rolled = periods.roll(
                wallet_record.buckets(wallet),
                Decimal(wallet["drawn"]),
                Decimal(wallet["held"]),
                now,
                self._terms_of(wallet),
                self.catalog,
            )
            try:
                self._write_roll(wallet_id, wallet, rolled)
            except WriteRejected:
                continue  # another change (or another run of this job) came first
            expired = -sum((p.credits for p in rolled.postings if p.kind == "expire"), ZERO)
            granted = sum((p.credits for p in rolled.postings if p.kind == "grant"), ZERO)
            return Advanced(wallet_id, rolled.period is not None, expired, granted)
        raise Contention(f"wallet {wallet_id!r} kept changing during its reset")

    def _write_roll(self, wallet_id: str, wallet: dict[str, Any], rolled: Rolled) -> None:
        if not rolled.changed:
            if int(wallet.get("due_at", -1)) != rolled.due_at:  # not due after all: reschedule
                self.store.update(
                    Update(
                        key=wallet_record.key(wallet_id),
                        expression="SET due_at = :due, due_shard = :dsh REMOVE posts",
                        condition="bver = :bver",
                        values={
                            ":due": rolled.due_at,
                            ":dsh": wallet_record.due_shard(wallet_id),
                            ":bver": wallet["bver"],
                        },
                    )
                )
            return
        at = now_ms()
        posts = [self._roll_post(p, at, int(wallet["bver"])) for p in rolled.postings]
        sets: dict[str, Any] = {}
        removes: tuple[str, ...] = ()
        clauses: tuple[str, ...] = ()
        names: dict[str, str] = {}
        condition = "pe = :pe"
        values: dict[str, Any] = {":pe": wallet["pe"]}
        if rolled.balance_delta < 0:
            # What is expired was computed from the wallet as read. A debit or hold that landed
            # since may have used those very credits: then available would end below zero, so
            # the write is refused and the wallet read again.
            condition += " AND avail >= :floor"
            values[":floor"] = -rolled.balance_delta
        period = rolled.period
        if period is not None:
            sets = {
                "ps": period.start,
                "pe": period.end,
                "plan": period.plan,
                "allow": period.allowance,
                "ovr": period.overage,
            }
            removes = ("pn", "pa")
            # Relative: usage committed between the read and this write counts in the new
            # period. The spending limit's room and each member budget's room get back what
            # the ended period used.
            used = Decimal(wallet["used"])
            clauses = ("used = used - :used", "lrem = if_not_exists(lrem, :unl) + :used")
            values[":used"] = used
            values[":unl"] = wallet_record.NO_LIMIT_ROOM
            for i, (tag, budget) in enumerate(sorted(wallet.get("mb", {}).items())):
                if Decimal(budget["u"]) != 0:
                    names[f"#m{i}"] = tag
                    values[f":u{i}"] = Decimal(budget["u"])
                    clauses += (
                        f"mb.#m{i}.r = mb.#m{i}.r + :u{i}",
                        f"mb.#m{i}.u = mb.#m{i}.u - :u{i}",
                    )
        change = _BucketChange(
            buckets=rolled.buckets,
            drawn_delta=rolled.drawn_delta,
            balance_delta=rolled.balance_delta,
            posts=posts,
            period_end=period.end if period else int(wallet["pe"]),
            sets=sets,
            removes=removes,
            clauses=clauses,
            condition=condition,
            values=values,
            names=names,
        )
        self.store.update(_bucket_update(wallet_id, wallet, change))

    @staticmethod
    def _roll_post(p: Posting, at: int, version: int) -> dict[str, Any]:
        if p.kind == "grant":
            assert p.bucket_id is not None
            return wallet_record.posting(
                p.bucket_id,
                "grant",
                p.credits,
                "posted",
                at,
                source=p.source,
                bucket_id=p.bucket_id,
                expires_at=p.expires_at,
            )
        if p.kind == "expire":
            assert p.bucket_id is not None
            # A bucket kept in part for open holds expires in steps: a partial step's id also
            # names the bucket-list version it was written at (one write per version); the
            # step that empties the bucket has the plain id.
            step = f"_{version}" if p.partial else ""
            return wallet_record.posting(
                f"exp_{p.bucket_id.removeprefix('grt_')}{step}",
                "expire",
                p.credits,
                "posted",
                at,
                source=p.source,
                bucket_id=p.bucket_id,
                partial=p.partial,
            )
        return wallet_record.posting(
            f"ovg_{at:011x}", "overage", p.credits, "posted", at, reason="deficit billed as overage"
        )

    # -- grants ----------------------------------------------------------------------------

    def grant(
        self,
        wallet_id: str,
        credits: Decimal,
        source: str,
        request: Request,
        expires_at: datetime | None = None,
        priority: int | None = None,
        reason: str | None = None,
    ) -> Granted:
        if source not in self.catalog.sources:
            raise InvalidRequest([FieldProblem("source", f"unknown source {source!r}")])
        if source in _NOT_GRANTABLE:
            raise InvalidRequest(
                [FieldProblem("source", f"{source} credits come from {_NOT_GRANTABLE[source]}")]
            )
        return self._grant(wallet_id, credits, source, request, expires_at, priority, reason)

    def _grant(
        self,
        wallet_id: str,
        credits: Decimal,
        source: str,
        request: Request,
        expires_at: datetime | None,
        priority: int | None,
        reason: str | None,
        op: str = "grant",
    ) -> Granted:
        key = op_key(wallet_id, op, request.idempotency_key)
        record_key = items.record_key(wallet_id, GRANT_RECORD, key)
        if expires_at is not None and not (
            clock.now_ts() < expires_at.timestamp() <= clock.now_ts() + MAX_GRANT_SECONDS
        ):
            # A retry of a grant made before its credits expired still gets its first result.
            first = self.store.get(record_key)
            if first is not None:
                return self._replay_grant(first, request)
            raise InvalidRequest(
                [FieldProblem("expires_at", "must be in the future and within 100 years")]
            )
        prio = self.catalog.sources[source].priority if priority is None else priority
        for _ in range(_ATTEMPTS):
            wallet = self._wallet_item(wallet_id)
            at = now_ms()
            gid = grant_id(at, wallet_id, op, key)
            expires = None if expires_at is None else int(expires_at.timestamp())
            if expires is None and source == "purchase" and self._purchases_expire(wallet):
                expires = self._period_end(wallet)
            bucket = Bucket(gid, source, credits, prio, at, expires)
            rebased = self._add_bucket(
                wallet_record.buckets(wallet), Decimal(wallet["drawn"]), bucket, self.catalog
            )
            change = _BucketChange(
                buckets=rebased.buckets,
                drawn_delta=rebased.drawn_delta,
                balance_delta=credits,
                posts=[_grant_post(bucket, at, reason)],
                period_end=int(wallet["pe"]),
            )
            record = {
                **record_key,
                "kind": "grant",
                "gid": gid,
                "rh": request.request_hash,
                "credits": credits,
                "src": source,
                "pri": prio,
                "exp": expires,
                "at": at,
            }
            try:
                self.store.transact(_bucket_update(wallet_id, wallet, change), Put(record))
                return Granted(gid, credits, source, prio, expires)
            except WriteRejected as rejected:
                if rejected.old[1] is not None:
                    return self._replay_grant(rejected.old[1], request)
                # The bucket list changed under us (another grant): read again and retry.
        raise Contention("the wallet's buckets kept changing; retry the request")

    @staticmethod
    def _period_end(wallet: dict[str, Any]) -> int:
        """The end of the period the wallet is in now — also in the minutes between a period's
        end and its reset, when the stored one is already past."""
        pe, now = int(wallet["pe"]), int(clock.now_ts())
        return pe if pe > now else periods.period_at(pe, int(wallet.get("anc", 1)), now)[1]

    def _purchases_expire(self, wallet: dict[str, Any]) -> bool:
        plan = self.catalog.plans.get(wallet["plan"])
        return plan is not None and plan.purchases_expire_at_reset

    @staticmethod
    def _replay_grant(record: dict[str, Any], request: Request) -> Granted:
        if record["rh"] != request.request_hash:
            raise key_reused()
        return _grant_record(record)

    def grants(
        self, wallet_id: str, limit: int, cursor: str | None
    ) -> tuple[list[GrantLine], str | None]:
        """The wallet's grants, newest first, with what each has left (from the wallet)."""
        start = None if cursor is None else decode_cursor(cursor, items.GRANT_PREFIX)
        wallet = self._wallet_item(wallet_id)
        found, last = self.store.query_page(
            items.wallet_pk(wallet_id), items.GRANT_PREFIX, limit, start
        )
        left = {
            v.bucket.id: v.remaining
            for v in wallets.remaining(wallet_record.buckets(wallet), Decimal(wallet["drawn"]))
        }
        lines = []
        for g in found:
            if "grant_id" not in g:  # its end was projected before the grant itself
                continue
            gid = g["grant_id"]
            remaining = left.get(gid, ZERO)
            if gid in left:  # still in the wallet: the wallet says how much is left
                status = "active" if remaining > 0 else "used"
            else:  # gone: expired or voided (the line says), else used up
                status = g.get("status", "used")
            exp = g.get("expires_at")
            lines.append(
                GrantLine(
                    grant_id=gid,
                    source=g["source"],
                    credits=Decimal(g["credits"]),
                    remaining=remaining,
                    status=status,
                    granted_at=int(g["at"]),
                    expires_at=None if exp is None else int(exp),
                    reason=g.get("reason"),
                )
            )
        return lines, None if last is None else encode_cursor(last)

    def void_grant(self, wallet_id: str, gid: str) -> Voided:
        """Take back a grant nothing has been drawn from. Voiding twice answers the same."""
        for _ in range(_ATTEMPTS):
            wallet = self._wallet_item(wallet_id)
            buckets = wallet_record.buckets(wallet)
            bucket = next((b for b in buckets if b.id == gid), None)
            if bucket is None:
                return self._explain_void(wallet_id, gid)
            if bucket.source in _NOT_VOIDABLE:
                raise Conflict(
                    f"{bucket.source} credits cannot be voided", code="grant-not-voidable"
                )
            voided = periods.void(buckets, Decimal(wallet["drawn"]), gid)
            if voided is None:
                raise Conflict(f"grant {gid} has been used in part", code="grant-in-use")
            at = now_ms()
            post = wallet_record.posting(
                f"vd_{gid.removeprefix('grt_')}",
                "void",
                -voided.amount,
                "posted",
                at,
                source=bucket.source,
                bucket_id=gid,
            )
            change = _BucketChange(
                buckets=voided.buckets,
                drawn_delta=ZERO,
                balance_delta=-voided.amount,
                posts=[post],
                period_end=int(wallet["pe"]),
                condition="avail >= :amt AND drawn <= :before",
                values={":amt": voided.amount, ":before": voided.drawn_before},
            )
            record = {
                **items.record_key(wallet_id, VOID_RECORD, gid),
                "kind": "void",
                "credits": voided.amount,
                "at": at,
            }
            try:
                self.store.transact(_bucket_update(wallet_id, wallet, change), Put(record))
            except WriteRejected as rejected:
                if rejected.old[1] is not None:  # voided meanwhile by a racing request
                    return Voided(gid, Decimal(rejected.old[1]["credits"]))
                old = rejected.old[0]
                if old is not None and Decimal(old["avail"]) < voided.amount:
                    raise Conflict(
                        f"grant {gid}: its credits are held by open reservations",
                        code="grant-in-use",
                    ) from None
                continue  # drawn from meanwhile, or the buckets changed: look again
            return Voided(gid, voided.amount)
        raise Contention("the wallet kept changing; retry the request")

    def _explain_void(self, wallet_id: str, gid: str) -> Voided:
        voided = self.store.get(items.record_key(wallet_id, VOID_RECORD, gid))
        if voided is not None:  # a retry: the same answer
            return Voided(gid, Decimal(voided["credits"]))
        line = self.store.get(items.grant_item_key(wallet_id, gid))
        if line is None:
            raise GrantNotFound(f"grant {gid!r} does not exist or is not listed yet")
        raise Conflict(
            f"grant {gid} is {line.get('status') or 'used up'}", code="grant-not-voidable"
        )

    # -- adjustments and transfers -------------------------------------------------------------

    def adjust(self, wallet_id: str, credits: Decimal, reason: str, request: Request) -> Adjusted:
        """A manual correction. Positive: a ``manual`` grant. Negative: a debit that may take
        the balance below zero (new holds are then refused until it is repaid)."""
        if credits > 0:
            g = self._grant(wallet_id, credits, "manual", request, None, None, reason, "adjust")
            return Adjusted(g.grant_id, g.credits, reason)
        key = op_key(wallet_id, "adjust", request.idempotency_key)
        aid = f"adj_{key}"
        at = now_ms()
        amount = -credits
        wallet_update = Update(
            key=wallet_record.key(wallet_id),
            expression=(
                "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, seq = seq + :one, "
                "posts = :posts"
            ),
            condition="attribute_exists(pk)",
            values={
                ":a": amount,
                ":one": 1,
                ":posts": [
                    wallet_record.posting(aid, "adjustment", credits, "posted", at, reason=reason)
                ],
            },
        )
        record = {
            # Under the same key as a positive adjustment's grant record: one Idempotency-Key
            # serves one adjustment, whichever its sign.
            **items.record_key(wallet_id, GRANT_RECORD, key),
            "kind": "adjustment",
            "rh": request.request_hash,
            "credits": credits,
            "reason": reason,
            "at": at,
            "ttl": record_ttl(),
        }
        try:
            self.store.transact(wallet_update, Put(record))
        except WriteRejected as rejected:
            first = rejected.old[1]
            if first is None:
                raise no_wallet(wallet_id) from None
            if first["rh"] != request.request_hash or first.get("kind") != "adjustment":
                raise key_reused() from None
            return Adjusted(aid, Decimal(first["credits"]), first["reason"], replayed=True)
        return Adjusted(aid, credits, reason)

    def transfer(
        self,
        from_wallet: str,
        to_wallet: str,
        credits: Decimal,
        reason: str | None,
        request: Request,
    ) -> Transferred:
        """Move credits between two wallets atomically: a debit here, a ``transfer`` grant
        there, and the transfer's record, in one transaction. The grant expires when the
        soonest-expiring credits it was drawn from would have (so a transfer cannot make
        expiring credits permanent), as far as the source wallet read before shows."""
        if from_wallet == to_wallet:
            raise InvalidRequest([FieldProblem("to_wallet_id", "is the wallet itself")])
        key = op_key(from_wallet, "transfer", request.idempotency_key)
        tid = f"xfr_{key}"
        record_key = items.record_key(from_wallet, TRANSFER_RECORD, key)
        prio = self.catalog.sources["transfer"].priority
        for _ in range(_ATTEMPTS):
            target = self.store.get(wallet_record.key(to_wallet))
            if target is None:
                first = self.store.get(record_key)
                if first is not None:
                    return self._replay_transfer(tid, from_wallet, first, request)
                raise WalletNotFound(f"wallet {to_wallet!r} (to_wallet_id) does not exist")
            source = self.store.get(wallet_record.key(from_wallet))
            expires = None if source is None else _drawn_expiry(source, credits)
            at = now_ms()
            gid = grant_id(at, to_wallet, "transfer", from_wallet, key)
            bucket = Bucket(gid, "transfer", credits, prio, at, expires)
            rebased = self._add_bucket(
                wallet_record.buckets(target), Decimal(target["drawn"]), bucket, self.catalog
            )
            debit = Update(
                key=wallet_record.key(from_wallet),
                expression=(
                    "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, "
                    "seq = seq + :one, posts = :posts"
                ),
                condition="attribute_exists(pk) AND avail >= :a",
                values={
                    ":a": credits,
                    ":one": 1,
                    ":posts": [
                        wallet_record.posting(
                            tid, "transfer", -credits, "posted", at, reason=reason
                        )
                    ],
                },
            )
            credit = _bucket_update(
                to_wallet,
                target,
                _BucketChange(
                    buckets=rebased.buckets,
                    drawn_delta=rebased.drawn_delta,
                    balance_delta=credits,
                    posts=[_grant_post(bucket, at, reason)],
                    period_end=int(target["pe"]),
                ),
            )
            record = {
                **record_key,
                "kind": "transfer",
                "rh": request.request_hash,
                "to": to_wallet,
                "credits": credits,
                "gid": gid,
                "at": at,
                "ttl": record_ttl(),
            }
            try:
                self.store.transact(debit, credit, Put(record))
            except WriteRejected as rejected:
                source, _, first = rejected.old
                if first is not None:
                    return self._replay_transfer(tid, from_wallet, first, request)
                if rejected.old[1] is not None:
                    continue  # the target's buckets changed: read again
                if source is None:
                    raise no_wallet(from_wallet) from None
                available = Decimal(source["avail"])
                raise InsufficientCredits(
                    f"{fmt(credits)} credits to transfer, {fmt(available)} available",
                    available=available,
                    requested=credits,
                ) from None
            return Transferred(tid, from_wallet, to_wallet, credits, gid)
        raise Contention("the target wallet kept changing; retry the request")

    @staticmethod
    def _replay_transfer(
        tid: str, from_wallet: str, first: dict[str, Any], request: Request
    ) -> Transferred:
        if first["rh"] != request.request_hash:
            raise key_reused()
        return Transferred(
            tid, from_wallet, first["to"], Decimal(first["credits"]), first["gid"], replayed=True
        )

    # -- promo codes -------------------------------------------------------------------------

    def create_promo(self, promo: PromoCode) -> tuple[bool, PromoCode]:
        """Define a code (True); the same definition again answers it (False); another
        definition under a taken code is a conflict."""
        now = clock.now_ts()
        for name, moment in (
            ("expires_at", promo.expires_at),
            ("credits_expire_at", promo.credits_expire_at),
        ):
            if moment is not None and not now < moment <= now + MAX_GRANT_SECONDS:
                raise InvalidRequest(
                    [FieldProblem(name, "must be in the future and within 100 years")]
                )
        item = {
            **items.promo_key(promo.code),
            "kind": "promo",
            "code": promo.code,
            "credits": promo.credits,
            "exp": promo.expires_at,
            "cexp": promo.credits_expire_at,
            "cdays": promo.credits_expire_in_days,
            "cap": promo.max_redemptions,
            "redeemed": 0,
            "created": promo.created_at,
        }
        try:
            self.store.put_new(Put(item))
            return True, promo
        except WriteRejected as rejected:
            first = rejected.old[0]
            if first is None:  # pragma: no cover - a refused Put returns what was there
                raise
        existing = _promo(first)
        same = (existing.credits, existing.expires_at, existing.credits_expire_at) == (
            promo.credits,
            promo.expires_at,
            promo.credits_expire_at,
        ) and (existing.credits_expire_in_days, existing.max_redemptions) == (
            promo.credits_expire_in_days,
            promo.max_redemptions,
        )
        if not same:
            raise Conflict(
                f"promo code {promo.code!r} exists with another definition",
                code="promo-code-exists",
            )
        return False, existing

    def redeem(self, wallet_id: str, code: str, request: Request) -> Granted:
        """Credit a promo code's grant: once per wallet, never beyond the code's cap, in one
        transaction (the code's counter, the wallet's redemption record, the wallet)."""
        key = op_key(wallet_id, "redeem", request.idempotency_key)
        record_key = items.record_key(wallet_id, PROMO_RECORD, code)
        prio = self.catalog.sources["promo"].priority
        for _ in range(_ATTEMPTS):
            found = self.store.get(items.promo_key(code))
            if found is None:
                raise PromoCodeNotFound(f"promo code {code!r} does not exist")
            promo = _promo(found)
            now = int(clock.now_ts())
            wallet = self._wallet_item(wallet_id)
            at = now_ms()
            gid = grant_id(at, wallet_id, "promo", code)
            expires = promo.credits_expire_at
            if promo.credits_expire_in_days is not None:
                expires = now + promo.credits_expire_in_days * DAY
            if expires is not None and expires <= now:
                raise Conflict(
                    f"the credits of promo code {code!r} expired", code="promo-code-expired"
                )
            bucket = Bucket(gid, "promo", promo.credits, prio, at, expires)
            rebased = self._add_bucket(
                wallet_record.buckets(wallet), Decimal(wallet["drawn"]), bucket, self.catalog
            )
            conditions = ["attribute_exists(pk)"]
            values: dict[str, Any] = {":one": 1}
            if promo.expires_at is not None:
                conditions.append("exp >= :now")  # expires_at is the last moment it redeems
                values[":now"] = now
            if promo.max_redemptions is not None:
                conditions.append("redeemed < :cap")
                values[":cap"] = promo.max_redemptions
            count = Update(
                key=items.promo_key(code),
                expression="SET redeemed = redeemed + :one",
                condition=" AND ".join(conditions),
                values=values,
            )
            record = {
                **record_key,
                "kind": "redemption",
                "gid": gid,
                "rk": key if request.idempotency_key else None,
                "rh": request.request_hash,
                "credits": promo.credits,
                "src": "promo",
                "pri": prio,
                "exp": expires,
                "at": at,
            }
            change = _BucketChange(
                buckets=rebased.buckets,
                drawn_delta=rebased.drawn_delta,
                balance_delta=promo.credits,
                posts=[_grant_post(bucket, at, f"promo code {code}")],
                period_end=int(wallet["pe"]),
            )
            writes: list[Update | Put] = [
                count,
                Put(record),
                _bucket_update(wallet_id, wallet, change),
            ]
            if request.idempotency_key:  # the key may serve one redemption only
                writes.append(
                    Put(
                        {
                            **items.record_key(wallet_id, REDEEM_KEY_RECORD, key),
                            "kind": "redemption-key",
                            "rh": request.request_hash,
                            "ttl": record_ttl(),
                        }
                    )
                )
            try:
                self.store.transact(*writes)
            except WriteRejected as rejected:
                counted, first, _ = rejected.old[:3]
                used_key = rejected.old[3] if len(rejected.old) > 3 else None
                if used_key is not None and used_key["rh"] != request.request_hash:
                    raise key_reused() from None
                if first is not None:
                    if request.idempotency_key and first.get("rk") == key:
                        return self._replay_grant(first, request)
                    raise Conflict(
                        f"wallet {wallet_id!r} has already redeemed {code!r}",
                        code="promo-code-already-redeemed",
                    ) from None
                if counted is not None:
                    self._promo_refused(_promo(counted), now)
                continue  # the wallet's buckets changed: read again
            return Granted(gid, promo.credits, "promo", prio, expires)
        raise Contention("the wallet kept changing; retry the request")

    @staticmethod
    def _promo_refused(promo: PromoCode, now: int) -> None:
        if promo.expires_at is not None and promo.expires_at < now:
            raise Conflict(f"promo code {promo.code!r} has expired", code="promo-code-expired")
        if promo.max_redemptions is not None and promo.redeemed >= promo.max_redemptions:
            raise Conflict(
                f"promo code {promo.code!r} has been redeemed its maximum of "
                f"{promo.max_redemptions} times",
                code="promo-code-exhausted",
            )

    # -- referrals ---------------------------------------------------------------------------

    def refer(self, wallet_id: str, referrer: str) -> Referred:
        """Reward a referral: the referred wallet (once in its life) and its referrer (up to the
        catalog's maximum of rewarded referrals) each get a ``referral`` grant, together."""
        if wallet_id == referrer:
            raise InvalidRequest([FieldProblem("referrer_wallet_id", "is the wallet itself")])
        cfg = self.catalog.referral
        prio = self.catalog.sources["referral"].priority
        for _ in range(_ATTEMPTS):
            wallet = self._wallet_item(wallet_id)
            if "rby" in wallet:
                return self._replay_referral(wallet_id, referrer, wallet["rby"])
            other = self.store.get(wallet_record.key(referrer))
            if other is None:
                raise WalletNotFound(f"wallet {referrer!r} (referrer_wallet_id) does not exist")
            if other.get("rby", {}).get("w") == wallet_id:
                raise InvalidRequest(
                    [FieldProblem("referrer_wallet_id", "was referred by this wallet")]
                )
            at = now_ms()
            expires = None
            if cfg.expires_in_days is not None:
                expires = int(clock.now_ts()) + cfg.expires_in_days * DAY
            rewarded = int(other.get("rfc", 0)) < cfg.max_rewarded_per_referrer
            writes = [
                self._referral_write(
                    wallet_id,
                    wallet,
                    Bucket(
                        grant_id(at, wallet_id, "referral", referrer),
                        "referral",
                        cfg.referee_credits,
                        prio,
                        at,
                        expires,
                    ),
                    f"referred by {referrer}",
                    sets={"rby": _referral_mark(referrer, at, rewarded, expires)},
                    condition="attribute_not_exists(rby)",
                )
            ]
            if rewarded:
                writes.append(
                    self._referral_write(
                        referrer,
                        other,
                        Bucket(
                            grant_id(at, referrer, "referral", wallet_id),
                            "referral",
                            cfg.referrer_credits,
                            prio,
                            at,
                            expires,
                        ),
                        f"referred {wallet_id}",
                        sets={"rfc": int(other.get("rfc", 0)) + 1},
                    )
                )
            try:
                self.store.transact(*writes)
            except WriteRejected:
                continue  # a bucket list changed, or a racing referral came first: look again
            return self._replay_referral(
                wallet_id, referrer, _referral_mark(referrer, at, rewarded, expires)
            )
        raise Contention("the wallets kept changing; retry the request")

    def _referral_write(
        self,
        wallet_id: str,
        wallet: dict[str, Any],
        bucket: Bucket,
        reason: str,
        sets: dict[str, Any],
        condition: str = "",
    ) -> Update:
        rebased = self._add_bucket(
            wallet_record.buckets(wallet), Decimal(wallet["drawn"]), bucket, self.catalog
        )
        return _bucket_update(
            wallet_id,
            wallet,
            _BucketChange(
                buckets=rebased.buckets,
                drawn_delta=rebased.drawn_delta,
                balance_delta=bucket.amount,
                posts=[_grant_post(bucket, bucket.created_at, reason)],
                period_end=int(wallet["pe"]),
                sets=sets,
                condition=condition,
            ),
        )

    def _replay_referral(self, wallet_id: str, referrer: str, rby: dict[str, Any]) -> Referred:
        if rby["w"] != referrer:
            raise Conflict(
                f"wallet {wallet_id!r} was already referred by another wallet",
                code="already-referred",
            )
        cfg = self.catalog.referral
        prio = self.catalog.sources["referral"].priority
        at = int(rby["at"])
        exp = None if rby.get("x") is None else int(rby["x"])
        mine = Granted(
            grant_id(at, wallet_id, "referral", referrer),
            cfg.referee_credits,
            "referral",
            prio,
            exp,
        )
        theirs = None
        if rby.get("rw"):
            theirs = Granted(
                grant_id(at, referrer, "referral", wallet_id),
                cfg.referrer_credits,
                "referral",
                prio,
                exp,
            )
        return Referred(wallet_id, referrer, mine, theirs)


def _drawn_expiry(wallet: dict[str, Any], credits: Decimal) -> int | None:
    """The soonest expiry among the buckets the next ``credits`` drawn would come from, in the
    wallet as read (a debit landing before the write may shift the draw to later buckets; the
    grant keeps the expiry computed here)."""
    soonest: int | None = None
    for view in wallets.remaining(wallet_record.buckets(wallet), Decimal(wallet["drawn"])):
        if credits <= 0:
            break
        if view.remaining <= 0:
            continue
        credits -= view.remaining
        exp = view.bucket.expires_at
        if exp is not None and (soonest is None or exp < soonest):
            soonest = exp
    return soonest


def _referral_mark(referrer: str, at: int, rewarded: bool, expires: int | None) -> dict[str, Any]:
    """What the referred wallet keeps of its referral (``rby``): enough to answer a retry."""
    mark: dict[str, Any] = {"w": referrer, "at": at, "rw": rewarded}
    if expires is not None:
        mark["x"] = expires
    return mark


def _promo(item: dict[str, Any]) -> PromoCode:
    def opt(name: str) -> int | None:
        value = item.get(name)
        return None if value is None else int(value)

    return PromoCode(
        code=item["code"],
        credits=Decimal(item["credits"]),
        expires_at=opt("exp"),
        credits_expire_at=opt("cexp"),
        credits_expire_in_days=opt("cdays"),
        max_redemptions=opt("cap"),
        redeemed=int(item["redeemed"]),
        created_at=int(item["created"]),
    )
