"""The API's operations, grouped by resource: one method per route of docs/openapi.yaml.

This is the synchronous version; ``_async_resources.py`` is generated from it by
``tools/gen_async.py`` (the same methods, awaited), so the two never drift apart.
Amounts may be given as ``Decimal``, ``int`` or decimal strings; they are sent as strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from credit_meter_client import models as m
from credit_meter_client._base import Call, CsvPage, _Resource, body_of, new_key, segment

Amount = Decimal | int | str
Usage = Sequence[dict[str, Any]]


def _w(wallet_id: str) -> str:
    return f"/v1/wallets/{segment(wallet_id)}"


def _iso(value: datetime | date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime | date) else value


class Wallets(_Resource):
    def create(
        self,
        wallet_id: str,
        *,
        plan: str,
        allowance: Amount | None = None,
        anchor_day: int | None = None,
        org_id: str | None = None,
    ) -> m.WalletOut:
        """Create the wallet, or change its plan (PUT: the same call does both)."""
        body = body_of(plan=plan, allowance=allowance, anchor_day=anchor_day, org_id=org_id)
        return self._runner.run(Call("PUT", _w(wallet_id), m.WalletOut, body))

    change_plan = create

    def get(self, wallet_id: str) -> m.WalletOut:
        return self._runner.run(Call("GET", _w(wallet_id), m.WalletOut))

    def set_bypass(self, wallet_id: str, *, enabled: bool) -> m.WalletOut:
        body = body_of(enabled=enabled)
        return self._runner.run(Call("PUT", f"{_w(wallet_id)}/bypass", m.WalletOut, body))


class Reservations(_Resource):
    def create(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        expires_in_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> m.ReservationOut:
        body = body_of(
            feature=feature,
            credits=credits,
            usage=usage,
            member_id=member_id,
            expires_in_seconds=expires_in_seconds,
        )
        path = f"{_w(wallet_id)}/reservations"
        call = Call("POST", path, m.ReservationOut, body, idempotency_key=new_key(idempotency_key))
        return self._runner.run(call)

    def commit(
        self,
        wallet_id: str,
        reservation_id: str,
        *,
        credits: Amount | None = None,
        usage: Usage | None = None,
        idempotency_key: str | None = None,
    ) -> m.CommitOut:
        """Charge the actual cost (``credits`` or ``usage``; neither: what was held)."""
        path = f"{_w(wallet_id)}/reservations/{segment(reservation_id)}/commit"
        body = body_of(credits=credits, usage=usage)
        call = Call("POST", path, m.CommitOut, body, idempotency_key=new_key(idempotency_key))
        return self._runner.run(call)

    def release(
        self, wallet_id: str, reservation_id: str, *, idempotency_key: str | None = None
    ) -> m.ReleaseOut:
        path = f"{_w(wallet_id)}/reservations/{segment(reservation_id)}/release"
        call = Call("POST", path, m.ReleaseOut, {}, idempotency_key=new_key(idempotency_key))
        return self._runner.run(call)


class Charges(_Resource):
    def create(
        self,
        wallet_id: str,
        *,
        feature: str,
        credits: Amount | None = None,
        usage: Usage | None = None,
        member_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.ChargeOut:
        body = body_of(feature=feature, credits=credits, usage=usage, member_id=member_id)
        call = Call(
            "POST",
            f"{_w(wallet_id)}/charges",
            m.ChargeOut,
            body,
            idempotency_key=new_key(idempotency_key),
        )
        return self._runner.run(call)

    def quote(self, wallet_id: str, *, usage: Usage) -> m.QuoteOut:
        body = body_of(usage=usage)
        return self._runner.run(Call("POST", f"{_w(wallet_id)}/quote", m.QuoteOut, body))


class Grants(_Resource):
    def create(
        self,
        wallet_id: str,
        *,
        credits: Amount,
        source: str,
        expires_at: datetime | str | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> m.GrantOut:
        body = body_of(
            credits=credits, source=source, expires_at=_iso(expires_at), priority=priority
        )
        call = Call(
            "POST",
            f"{_w(wallet_id)}/grants",
            m.GrantOut,
            body,
            idempotency_key=new_key(idempotency_key),
        )
        return self._runner.run(call)

    def page(
        self, wallet_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> m.GrantsOut:
        params = {"limit": limit, "cursor": cursor}
        return self._runner.run(Call("GET", f"{_w(wallet_id)}/grants", m.GrantsOut, None, params))

    def list(self, wallet_id: str, *, limit: int | None = None) -> Iterator[m.GrantLineOut]:
        """Every grant, newest first, following the cursors page by page."""
        call = Call("GET", f"{_w(wallet_id)}/grants", m.GrantsOut, None, {"limit": limit})
        return self._runner.paginate(call)

    def void(self, wallet_id: str, grant_id: str) -> m.VoidOut:
        path = f"{_w(wallet_id)}/grants/{segment(grant_id)}/void"
        return self._runner.run(Call("POST", path, m.VoidOut, {}))

    def adjust(
        self,
        wallet_id: str,
        *,
        credits: Amount,
        reason: str,
        idempotency_key: str | None = None,
    ) -> m.AdjustmentOut:
        """A manual correction: positive grants, negative debits (may go below zero)."""
        body = body_of(credits=credits, reason=reason)
        path = f"{_w(wallet_id)}/adjustments"
        call = Call("POST", path, m.AdjustmentOut, body, idempotency_key=new_key(idempotency_key))
        return self._runner.run(call)

    def transfer(
        self,
        wallet_id: str,
        *,
        to_wallet_id: str,
        credits: Amount,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.TransferOut:
        body = body_of(to_wallet_id=to_wallet_id, credits=credits, reason=reason)
        path = f"{_w(wallet_id)}/transfers"
        call = Call("POST", path, m.TransferOut, body, idempotency_key=new_key(idempotency_key))
        return self._runner.run(call)


class Promotions(_Resource):
    def create_code(
        self,
        code: str,
        *,
        credits: Amount,
        expires_at: datetime | str | None = None,
        credits_expire_at: datetime | str | None = None,
        credits_expire_in_days: int | None = None,
        max_redemptions: int | None = None,
    ) -> m.PromoCodeOut:
        body = body_of(
            code=code,
            credits=credits,
            expires_at=_iso(expires_at),
            credits_expire_at=_iso(credits_expire_at),
            credits_expire_in_days=credits_expire_in_days,
            max_redemptions=max_redemptions,
        )
        return self._runner.run(Call("POST", "/v1/promo-codes", m.PromoCodeOut, body))

    def redeem(
        self, wallet_id: str, *, code: str, idempotency_key: str | None = None
    ) -> m.GrantOut:
        path = f"{_w(wallet_id)}/redeem"
        call = Call(
            "POST", path, m.GrantOut, body_of(code=code), idempotency_key=new_key(idempotency_key)
        )
        return self._runner.run(call)

    def refer(self, wallet_id: str, *, referrer_wallet_id: str) -> m.ReferralOut:
        body = body_of(referrer_wallet_id=referrer_wallet_id)
        return self._runner.run(Call("POST", f"{_w(wallet_id)}/referral", m.ReferralOut, body))


class Transactions(_Resource):
    def page(
        self,
        wallet_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        day: date | str | None = None,
        type: str | None = None,
        member_id: str | None = None,
        feature: str | None = None,
    ) -> m.TransactionsOut:
        params = body_of(
            limit=limit, cursor=cursor, day=_iso(day), type=type, member_id=member_id,
            feature=feature,
        )  # fmt: skip
        path = f"{_w(wallet_id)}/transactions"
        return self._runner.run(Call("GET", path, m.TransactionsOut, None, params))

    def list(
        self,
        wallet_id: str,
        *,
        limit: int | None = None,
        day: date | str | None = None,
        type: str | None = None,
        member_id: str | None = None,
        feature: str | None = None,
    ) -> Iterator[m.TransactionOut]:
        """The ledger, newest first, following the cursors page by page."""
        params = body_of(
            limit=limit, day=_iso(day), type=type, member_id=member_id, feature=feature
        )
        path = f"{_w(wallet_id)}/transactions"
        return self._runner.paginate(Call("GET", path, m.TransactionsOut, None, params))

    def export_csv(
        self,
        wallet_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        day: date | str | None = None,
        type: str | None = None,
        member_id: str | None = None,
        feature: str | None = None,
    ) -> CsvPage:
        """One CSV file of the ledger (up to 1,000 rows) and the cursor to the next."""
        params = body_of(
            limit=limit, cursor=cursor, day=_iso(day), type=type, member_id=member_id,
            feature=feature,
        )  # fmt: skip
        path = f"{_w(wallet_id)}/transactions.csv"
        return self._runner.run(Call("GET", path, None, None, params, parse=CsvPage.of))
