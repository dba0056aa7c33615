"""The ledger projector: turns each wallet write seen on the table's stream into ledger entries.

Every write that posts credits bumps the wallet's ``seq`` and leaves its postings in ``posts``;
the stream carries each write's old and new image exactly once and in order per wallet, so
entry ``seq`` gets ``balance_after`` from the new image. Entries are keyed by ``seq``, so a
replayed record rewrites identical items and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter.items import ENTRY_PREFIX, GRANT_PREFIX, WALLET_SK
from credit_meter.store import from_item

# Postings that end a grant, and the status its line in the grants list takes.
_ENDS = {"expire": "expired", "void": "voided"}


@dataclass(slots=True)
class Projection:
    """What one wallet write projects: ledger entries (whole items, rewritten identically on
    replay) and grants-list lines (field updates, so a grant's line and its end may be applied
    in any order and any number of times)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    grant_lines: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)


def project_change(
    old_image: dict[str, Any] | None, new_image: dict[str, Any] | None
) -> Projection:
    entries = entries_for_change(old_image, new_image)
    lines = []
    for entry in entries:
        bucket = entry.get("bucket_id")
        if bucket is None:
            continue
        key = {"pk": entry["pk"], "sk": f"{GRANT_PREFIX}{bucket}"}
        if entry["type"] == "grant":
            line = {
                "kind": "grant",
                "grant_id": bucket,
                "source": entry["source"],
                "credits": entry["credits"],
                "at": entry["at"],
                "expires_at": entry.get("grant_expires_at"),
                "reason": entry.get("reason"),
            }
            lines.append((key, {k: v for k, v in line.items() if v is not None}))
        elif entry["type"] in _ENDS and not entry.get("partial"):
            lines.append((key, {"status": _ENDS[entry["type"]], "ended_at": entry["at"]}))
    return Projection(entries, lines)


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
        optional = {
            "src": "source",
            "r": "reason",
            "b": "bucket_id",
            "x": "grant_expires_at",
            "pt": "partial",
        }
        entry.update({name: post[short] for short, name in optional.items() if short in post})
        if "k" in post and "c" in hold:
            entry["held"] = Decimal(hold["c"])
        entries.append(entry)
        balance -= Decimal(post["d"])
    entries.reverse()
    return entries


def project_record(record: dict[str, Any]) -> Projection:
    """What one DynamoDB stream record projects (the Lambda event's shape, images typed)."""
    change = record.get("dynamodb", {})
    old = change.get("OldImage")
    new = change.get("NewImage")
    return project_change(from_item(old) if old else None, from_item(new) if new else None)


def entries_for_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Ledger entries for one DynamoDB stream record."""
    return project_record(record).entries
