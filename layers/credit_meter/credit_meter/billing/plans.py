"""Plans: creating a wallet, changing its plan (an upgrade at once, a downgrade at the next
reset), bypass mode, and a wallet joining an organisation once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from credit_meter.billing.buckets import ATTEMPTS, BucketChange, bucket_update, grant_post
from credit_meter.billing.periods import Periods
from credit_meter.core import clock, periods, wallets
from credit_meter.core.catalog import Catalog, Plan, catalog
from credit_meter.core.errors import Conflict, Contention, FieldProblem, InvalidRequest, no_wallet
from credit_meter.core.ids import grant_id
from credit_meter.core.money import ZERO
from credit_meter.core.wallets import Bucket, WalletView
from credit_meter.storage import items, wallet_record
from credit_meter.storage.records import now_ms
from credit_meter.storage.store import Put, Store, WriteRejected


class Plans:
    """Wallets and their plans. A plan change on a wallet whose period ended runs the reset
    (``periods``) first, so the change applies to the period the wallet is really in."""

    def __init__(
        self, store: Store | None = None, cat: Catalog | None = None, resets: Periods | None = None
    ) -> None:
        self.store = store or Store()
        self.catalog = cat or catalog()
        self.periods = resets or Periods(self.store, self.catalog)

    def _view(self, wallet_id: str) -> WalletView:
        return wallet_record.view(wallet_record.read(self.store, wallet_id))

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
                item[wallet_record.ORG] = org_id
                self.store.transact(Put(item), Put(items.membership(org_id, wallet_id), None))
                if self._byok_flags(org_id, wallet_id):
                    return True, self._view(wallet_id)
            return True, wallet_record.view(item)
        except WriteRejected:
            pass
        for _ in range(ATTEMPTS):
            wallet = wallet_record.read(self.store, wallet_id)
            if wallet_record.period_end(wallet) <= clock.now_ts():
                # The period ended and the reset job has not run yet: run it first, so the
                # change applies to the period the wallet is really in.
                self.periods.advance(wallet_id)
                continue
            if anchor_day is not None and anchor_day != int(
                wallet.get(wallet_record.ANCHOR_DAY, 1)
            ):
                raise InvalidRequest(
                    [FieldProblem("anchor_day", "is set when the wallet is created; it stays")]
                )
            if org_id is not None and wallet_record.org(wallet) != org_id:
                self._join_org(wallet_id, wallet, org_id)
            try:
                self._change_plan(wallet_id, wallet, terms, allow)
            except WriteRejected:
                continue  # the buckets changed meanwhile: read again
            return False, self._view(wallet_id)
        raise Contention("the wallet kept changing; retry the request")

    def _join_org(self, wallet_id: str, wallet: dict[str, Any], org_id: str) -> None:
        """Put an existing wallet in an organisation: once, never into another one."""
        current = wallet_record.org(wallet)
        if current is None:
            try:
                self.store.transact(
                    wallet_record.join_org_update(wallet_id, org_id),
                    Put(items.membership(org_id, wallet_id), None),
                )
                self._byok_flags(org_id, wallet_id)
                return
            except WriteRejected as rejected:  # another request set it first
                current = wallet_record.org(rejected.old[0] or {})
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
            self.store.update(wallet_record.bypass_update(wallet_id, enabled))
        except WriteRejected:
            raise no_wallet(wallet_id) from None
        return self._view(wallet_id)

    def _change_plan(
        self, wallet_id: str, wallet: dict[str, Any], terms: Plan, allow: Decimal
    ) -> None:
        current = wallet_record.allowance(wallet)
        version = wallet[wallet_record.BUCKETS_VERSION]
        if wallet_record.plan(wallet) == terms.name and allow == current:
            if wallet_record.PENDING_PLAN in wallet:  # back to the current plan: no change due
                self.store.update(wallet_record.pending_plan_clear_update(wallet_id, version))
            return
        if allow <= current:  # a downgrade (or a sideways move): from the next period
            # bver moves too: a reset that read the wallet before this change must read it
            # again, or it would start the next period on the old plan.
            self.store.update(
                wallet_record.pending_plan_update(wallet_id, version, terms.name, allow)
            )
            return
        self.store.update(bucket_update(wallet_id, wallet, self._upgrade(wallet, terms, allow)))

    def _upgrade(self, wallet: dict[str, Any], terms: Plan, allow: Decimal) -> BucketChange:
        """The rest of the period gets the difference in allowance, at once."""
        at = now_ms()
        pe = wallet_record.period_end(wallet)
        ps = wallet_record.period_start(wallet)
        wallet_id = wallet_record.wallet_id(wallet)
        gid = grant_id(at, wallet_id, "upgrade", terms.name, str(ps))
        prio = self.catalog.sources["monthly"].priority
        bucket = Bucket(gid, "monthly", allow - wallet_record.allowance(wallet), prio, at, pe)
        # Not buckets.add_bucket: the allowance is never refused for the maximum of grants.
        rebased = wallets.add_bucket(
            wallet_record.buckets(wallet), wallet_record.drawn(wallet), bucket, self.catalog
        )
        return BucketChange(
            buckets=rebased.buckets,
            drawn_delta=rebased.drawn_delta,
            balance_delta=bucket.amount,
            posts=[grant_post(bucket, at, f"upgrade to {terms.name}")],
            period_end=pe,
            sets={
                wallet_record.PLAN: terms.name,
                wallet_record.ALLOWANCE: allow,
                wallet_record.OVERAGE: terms.overage,
            },
            removes=(wallet_record.PENDING_PLAN, wallet_record.PENDING_ALLOWANCE),
        )

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
        posts = [grant_post(b, at) for b in buckets]
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
