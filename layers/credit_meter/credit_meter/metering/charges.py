"""One-shot charges: one transaction, the wallet's debit and the charge's record, tested like a
hold (availability, the spending limit, the member's budget, the pricing mode)."""

from __future__ import annotations

from decimal import Decimal

from credit_meter.core.catalog import Catalog
from credit_meter.core.errors import SpendingLimitReached, no_wallet
from credit_meter.core.idempotency import Request, key_reused
from credit_meter.core.ids import charge_id, member_tag, op_key
from credit_meter.core.wallets import Charge
from credit_meter.metering import pricing_modes
from credit_meter.metering.costs import Cost, Prices
from credit_meter.metering.pricing_modes import Guess, wallet_mode
from credit_meter.metering.refusals import mark_refusal, refusal
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import CHARGE_RECORD
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Store, WriteRejected


class Charges:
    def __init__(self, store: Store, cat: Catalog) -> None:
        self.store, self.catalog = store, cat

    def charge(
        self,
        wallet_id: str,
        cost: Cost,
        request: Request,
        feature: str,
        member_id: str | None = None,
    ) -> Charge:
        price = Prices(cost, self.catalog)
        price(None)  # checks the cost before anything else
        key = op_key(wallet_id, "charge", request.idempotency_key)
        cid = charge_id(key)
        tag = None if member_id is None else member_tag(member_id)
        at = now_ms()

        def write(guess: Guess) -> None:
            amount, lines = price(guess.mode)
            post = wallet_record.posting(
                cid,
                "charge",
                -amount,
                "posted",
                at,
                feature=feature,
                member_id=member_id,
                usage=lines,
                mode=guess.mode,
            )
            record = {
                **items.record_key(wallet_id, CHARGE_RECORD, key),
                "kind": "charge",
                "rh": request.request_hash,
                "charged": amount,
                "at": at,
                "ttl": record_ttl(),
            }
            terms = guess.terms(member_id, tag)
            wallet_update = wallet_record.charge_update(wallet_id, amount, post, terms)
            self.store.transact(wallet_update, Put(record))

        try:
            guess = pricing_modes.debit(wallet_id, key, tag, member_id, write)
        except WriteRejected as rejected:
            wallet, first = rejected.old
            if first is not None:
                if first["rh"] != request.request_hash:
                    raise key_reused() from None
                return Charge(cid, Decimal(first["charged"]), replayed=True)
            if wallet is None:
                raise no_wallet(wallet_id) from None
            amount = price(wallet_mode(wallet, member_id))[0]
            refused = refusal(amount, wallet, tag)
            if isinstance(refused, SpendingLimitReached):
                mark_refusal(self.store, wallet_id, wallet, tag, refused)
            raise refused from None
        return Charge(cid, price(guess.mode)[0])
