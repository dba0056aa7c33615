"""How the domain is stored: the keys of the table's items and the mapping of ledger entries.

``docs/data-model.md`` describes every item. The wallet item's own shape (attribute names,
readers, update expressions) is :mod:`credit_meter.storage.wallet_record`'s.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from credit_meter.core.catalog import PricedLine
from credit_meter.core.wallets import Entry

ENTRY_PREFIX = "T#"
RECORD_PREFIX = "R#"
HOLD_RECORD = "H"  # a reservation: its request, then how it ended
CHARGE_RECORD = "C"
GRANT_RECORD = "G"
TRANSFER_RECORD = "X"
PROMO_RECORD = "P"  # a wallet's redemption of a promo code
VOID_RECORD = "V"  # a voided grant: answers a repeated void
REDEEM_KEY_RECORD = "K"  # an Idempotency-Key used for a promo redemption
GRANT_PREFIX = "G#"  # the grants list, projected from the stream
ORG_PREFIX = "O#"  # an organisation's partition: one membership line per wallet, W#<wallet_id>
PROMO_SK = "P"
PAYMENT_SK = "PAY"  # a payment's state, under its own partition (``payment_key``)
PAYMENT_LINE_PREFIX = "Y#"  # the wallet's payments list: Y#<first seen ms hex>#<payment id>
AUTO_TOPUP_SK = "A"  # a wallet's auto top-up settings and last attempt


def wallet_pk(wallet_id: str) -> str:
    return f"W#{wallet_id}"


def wallet_id_of(pk: str) -> str:
    return pk.removeprefix("W#")


def promo_key(code: str) -> dict[str, str]:
    return {"pk": f"P#{code}", "sk": PROMO_SK}


def payment_key(payment_id: str) -> dict[str, str]:
    return {"pk": f"PAY#{payment_id}", "sk": PAYMENT_SK}


def payment_line_key(wallet_id: str, first_at: int, payment_id: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": f"{PAYMENT_LINE_PREFIX}{first_at:011x}#{payment_id}"}


def auto_topup_key(wallet_id: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": AUTO_TOPUP_SK}


def grant_item_key(wallet_id: str, gid: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": f"{GRANT_PREFIX}{gid}"}


def org_pk(org_id: str) -> str:
    return f"{ORG_PREFIX}{org_id}"


def membership(org_id: str, wallet_id: str) -> dict[str, Any]:
    """The line that puts a wallet in an organisation's list (written with the wallet's org)."""
    return {
        "pk": org_pk(org_id),
        "sk": wallet_pk(wallet_id),
        "kind": "membership",
        "wallet_id": wallet_id,
    }


def record_key(wallet_id: str, kind: str, key: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": f"{RECORD_PREFIX}{kind}{key}"}


def entry(item: dict[str, Any]) -> Entry:
    return Entry(
        transaction_id=item["transaction_id"],
        type=item["type"],
        credits=Decimal(item["credits"]),
        balance_after=Decimal(item["balance_after"]),
        at=int(item["at"]),
        feature=item.get("feature"),
        member_id=item.get("member_id"),
        status=item["status"],
        source=item.get("source"),
        reason=item.get("reason"),
        held=None if item.get("held") is None else Decimal(item["held"]),
        mode=item.get("mode"),
        lines=tuple(
            PricedLine(
                meter=x["meter"],
                model=x.get("model"),
                tier=x.get("tier"),
                category=x["category"],
                unit=x["unit"],
                unit_price=Decimal(x["unit_price"]),
                quantity=Decimal(x["quantity"]),
                cost=Decimal(x["cost"]),
            )
            for x in item.get("lines") or ()
        ),
    )
