"""How the domain is stored: item keys, attribute names and the mapping to domain values.

``docs/data-model.md`` describes every item. The wallet item is the hot one, so its attributes
have short names (each write is billed on the item's whole size, names included).
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from credit_meter.core import alerts, wallets
from credit_meter.core.catalog import PricedLine
from credit_meter.core.wallets import Bucket, Entry, WalletView

WALLET_SK = "W"
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
# ``lrem`` (room left under the spending limit) of a wallet without a limit: every debit still
# counts down from it, so the hot path's one expression serves wallets with and without limits.
NO_LIMIT_ROOM = Decimal(10**15)
# A member's budget lives in the wallet (``mb.<tag>``) so it is tested in the debit's own write;
# this many at most keeps the hot item small (each adds ~60 bytes).
MAX_MEMBER_BUDGETS = 32
# Wallets with open holds are spread over this many partitions of the sweep index.
SWEEP_SHARDS = 16
SWEEP_INDEX = "SweepIndex"
# Wallets are spread over this many partitions of the due index (period ends, bucket expiries).
DUE_SHARDS = 16
DUE_INDEX = "DueIndex"


def wallet_pk(wallet_id: str) -> str:
    return f"W#{wallet_id}"


def wallet_id_of(pk: str) -> str:
    return pk.removeprefix("W#")


def sweep_shard(wallet_id: str) -> str:
    return f"S#{zlib.crc32(wallet_id.encode()) % SWEEP_SHARDS:02d}"


def due_shard(wallet_id: str) -> str:
    return f"D#{zlib.crc32(wallet_id.encode()) % DUE_SHARDS:02d}"


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


def wallet_key(wallet_id: str) -> dict[str, str]:
    return {"pk": wallet_pk(wallet_id), "sk": WALLET_SK}


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


def bucket_item(b: Bucket) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": b.id,
        "src": b.source,
        "amt": b.amount,
        "pri": b.priority,
        "at": b.created_at,
    }
    if b.expires_at is not None:
        item["exp"] = b.expires_at
    if b.granted is not None:
        item["g"] = b.granted
    if b.kept:
        item["kp"] = True
    return item


def bucket(item: dict[str, Any]) -> Bucket:
    return Bucket(
        id=item["id"],
        source=item["src"],
        amount=Decimal(item["amt"]),
        priority=int(item["pri"]),
        created_at=int(item["at"]),
        expires_at=int(item["exp"]) if "exp" in item else None,
        granted=Decimal(item["g"]) if "g" in item else None,
        kept=bool(item.get("kp", False)),
    )


def buckets(wallet: dict[str, Any]) -> list[Bucket]:
    return [bucket(b) for b in wallet.get("bk", [])]


def posting(
    transaction_id: str,
    kind: str,
    credits: Decimal,
    status: str,
    at: int,
    *,
    feature: str | None = None,
    member_id: str | None = None,
    hold_key: str | None = None,
    source: str | None = None,
    bucket_id: str | None = None,
    expires_at: int | None = None,
    reason: str | None = None,
    partial: bool = False,
    usage: list[str] | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """One ledger posting as the wallet write leaves it for the projector (``posts``).

    A reservation's posting names its hold (``k``) instead of repeating its feature and member:
    the projector reads them from the hold in the write's old image.
    """
    post: dict[str, Any] = {"id": transaction_id, "ty": kind, "d": credits, "st": status, "at": at}
    optional = {
        "f": feature,
        "m": member_id,
        "k": hold_key,
        "src": source,
        "b": bucket_id,
        "x": expires_at,
        "r": reason,
    }
    post.update({name: value for name, value in optional.items() if value is not None})
    if partial:  # an expiry that leaves part of the bucket (for open holds)
        post["pt"] = True
    if usage:  # the priced usage lines (charges and commits costed by usage)
        post["u"] = usage
    if mode is not None:  # priced as BYOK or bypass rather than in credits
        post["mo"] = mode
    return post


def wallet_view(item: dict[str, Any]) -> WalletView:
    lim, lat = item.get("lim"), item.get("lat")
    return WalletView(
        wallet_id=item["wallet_id"],
        plan=item["plan"],
        period_start=int(item["ps"]),
        period_end=int(item["pe"]),
        balance=Decimal(item["bal"]),
        held=Decimal(item["held"]),
        available=Decimal(item["avail"]),
        allowance=Decimal(item["allow"]),
        used=Decimal(item["used"]),
        buckets=wallets.remaining(buckets(item), Decimal(item["drawn"])),
        anchor_day=int(item.get("anc", 1)),
        pending_plan=item.get("pn"),
        overage=bool(item.get("ovr", False)),
        state=alerts.wallet_state(item),
        alert_threshold=None if lat is None else Decimal(lat),
        allowed_limit=None if lim is None else Decimal(lim),
        limit_remaining=None if lim is None else max(Decimal(0), Decimal(item["lrem"])),
        org_id=item.get("org"),
        bypass=bool(item.get("bp", False)),
    )


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
