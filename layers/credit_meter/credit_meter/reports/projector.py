"""The ledger projector: turns each wallet write seen on the table's stream into ledger entries.

Every write that posts credits bumps the wallet's ``seq`` and leaves its postings in ``posts``;
the stream carries each write's old and new image exactly once and in order per wallet, so
entry ``seq`` gets ``balance_after`` from the new image. Entries are keyed by ``seq``, so a
replayed record rewrites identical items and changes nothing.

The same record adds its usage to the wallet's rollups (:mod:`credit_meter.core.usage`): one
conditional update per rollup item, ``ADD`` of the record's sums under the condition that the
item's watermark ``s`` is below the record's last ``seq`` — a replayed record is refused and
adds nothing, a record half applied before a failure adds only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter.core.catalog import catalog
from credit_meter.core.usage import DAY_PREFIX, USAGE_TYPES, Delta, decode_line, rollup_deltas
from credit_meter.storage import wallet_record
from credit_meter.storage.items import ENTRY_PREFIX, GRANT_PREFIX
from credit_meter.storage.store import Update, from_item
from credit_meter.storage.wallet_record import WALLET_SK

# Postings that end a grant, and the status its line in the grants list takes.
_ENDS = {"expire": "expired", "void": "voided"}


@dataclass(slots=True)
class Projection:
    """What one wallet write projects: ledger entries (whole items, rewritten identically on
    replay) and grants-list lines (field updates, so a grant's line and its end may be applied
    in any order and any number of times)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    grant_lines: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    rollups: list[Update] = field(default_factory=list)


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
    pk = new_image["pk"] if new_image else ""
    rollups = [rollup_update(pk, sk, d) for sk, d in rollup_deltas(entries).items()]
    return Projection(entries, lines, rollups)


def rollup_update(pk: str, sk: str, delta: Delta) -> Update:
    """Add a record's sums to one rollup item, once: refused when the item's watermark shows
    the record was added already (the refusal is the replay's answer, not an error)."""
    names = {"#s": "s", "#kind": "kind"}
    values: dict[str, Any] = {":s": delta.last_seq, ":kind": "rollup"}
    sets = ["#kind = :kind", "#s = :s"]
    if sk.startswith(DAY_PREFIX):
        names["#s0"] = "s0"
        values[":s0"] = delta.first_seq
        sets.append("#s0 = if_not_exists(#s0, :s0)")
    adds = []
    for i, (name, amount) in enumerate(sorted(delta.sums.items())):
        names[f"#a{i}"] = name
        values[f":a{i}"] = amount
        adds.append(f"#a{i} :a{i}")
    expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
    return Update(
        key={"pk": pk, "sk": sk},
        expression=expression,
        condition="attribute_not_exists(#s) OR #s < :s",
        names=names,
        values=values,
        return_old=False,  # a refusal means "added already"; the item is not needed
    )


def entries_for_change(
    old_image: dict[str, Any] | None, new_image: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The ledger entry items a wallet change posts (deserialised images in, items out)."""
    if not new_image or new_image.get("sk") != WALLET_SK:
        return []
    old_seq = wallet_record.seq(old_image) if old_image else 0
    new_seq = wallet_record.seq(new_image)
    posts = wallet_record.posts(new_image)
    if new_seq <= old_seq or not posts:
        return []
    if new_seq - old_seq != len(posts):
        raise ValueError(
            f"{new_image['pk']}: seq moved {old_seq}->{new_seq} but {len(posts)} postings"
        )
    holds = wallet_record.open_holds(old_image or {})
    balance = wallet_record.balance(new_image)
    period_start = wallet_record.period_start(new_image)
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
        feature = post.get("f", hold.get(wallet_record.HOLD_FEATURE))
        member = post.get("m", hold.get(wallet_record.HOLD_MEMBER))
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
            "mo": "mode",
        }
        entry.update({name: post[short] for short, name in optional.items() if short in post})
        if post.get("u"):
            cat = catalog()
            entry["lines"] = [decode_line(text, cat) for text in post["u"]]
        if post["ty"] in USAGE_TYPES:
            entry["period_start"] = period_start
        if "k" in post and wallet_record.HOLD_CREDITS in hold:
            entry["held"] = wallet_record.hold_credits(hold)
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
