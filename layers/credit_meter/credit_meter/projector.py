"""The ledger projector: turns each wallet write seen on the table's stream into ledger entries.

Every write that posts credits bumps the wallet's ``seq`` and leaves its postings in ``posts``;
the stream carries each write's old and new image exactly once and in order per wallet, so
entry ``seq`` gets ``balance_after`` from the new image. Entries are keyed by ``seq``, so a
replayed record rewrites identical items and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from credit_meter.items import ENTRY_PREFIX, WALLET_SK
from credit_meter.store import from_item


def entries_for_change(
    old_image: dict[str, Any] | None, new_image: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The ledger entry items a wallet change posts (deserialised images in, items out)."""
    if not new_image or new_image.get("sk") != WALLET_SK:
        return []
    old_seq = int(old_image.get("seq", 0)) if old_image else 0
    new_seq = int(new_image.get("seq", 0))
    posts = new_image.get("posts") or []
    if new_seq <= old_seq or not posts:
        return []
    if new_seq - old_seq != len(posts):
        raise ValueError(
            f"{new_image['pk']}: seq moved {old_seq}->{new_seq} but {len(posts)} postings"
        )
    holds = (old_image or {}).get("hd", {})
    balance = Decimal(new_image["bal"])
    entries = []
    for offset, post in enumerate(reversed(posts)):
        seq = new_seq - offset
        hold = holds.get(post.get("k", ""), {})
        entry: dict[str, Any] = {
            "pk": new_image["pk"],
            "sk": f"{ENTRY_PREFIX}{seq:012d}",
            "kind": "entry",
            "seq": seq,
            "transaction_id": post["id"],
            "type": post["ty"],
            "credits": Decimal(post["d"]),
            "balance_after": balance,
            "at": int(post["at"]),
            "status": post["st"],
        }
        feature = post.get("f", hold.get("f"))
        member = post.get("m", hold.get("m"))
        if feature is not None:
            entry["feature"] = feature
        if member is not None:
            entry["member_id"] = member
        if "src" in post:
            entry["source"] = post["src"]
        if "k" in post and "c" in hold:
            entry["held"] = Decimal(hold["c"])
        entries.append(entry)
        balance -= Decimal(post["d"])
    entries.reverse()
    return entries


def entries_for_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Entries for one DynamoDB stream record (the Lambda event's shape, images typed)."""
    change = record.get("dynamodb", {})
    old = change.get("OldImage")
    new = change.get("NewImage")
    return entries_for_change(from_item(old) if old else None, from_item(new) if new else None)
