"""A reservation's operation record (``R#H<key>``): written with the hold when the request
has an Idempotency-Key, ended with it by commit, release or expiry. It outlives the hold, so a
retry after the end still finds the first result (docs/data-model.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from credit_meter.core.idempotency import Request
from credit_meter.storage import items
from credit_meter.storage.items import HOLD_RECORD
from credit_meter.storage.records import now_ms, record_ttl
from credit_meter.storage.store import Put, Update


def opened(
    wallet_id: str,
    key: str,
    request: Request,
    credits: Decimal,
    expires_at: int,
    tag: str | None,
    mode: str | None,
) -> Put:
    """The record of a hold just opened (``tag``: only when counted against a budget)."""
    record: dict[str, Any] = {
        **items.record_key(wallet_id, HOLD_RECORD, key),
        "kind": "reservation",
        "st": "held",
        "rh": request.request_hash,
        "c": credits,
        "x": expires_at,
        "at": now_ms(),
        "ttl": record_ttl(),
    }
    if tag is not None:
        record["b"] = tag
    if mode is not None:
        record["p"] = mode
    return Put(record)


def ended(
    wallet_id: str,
    key: str,
    status: str,
    digest: str,
    held: Decimal,
    charged: Decimal,
    at: int,
    tag: str | None,
    mode: str | None,
) -> Update:
    """How the hold ended, once: only while the record says ``held`` (or is absent: a hold
    opened without an Idempotency-Key). It keeps the hold's member tag (budgeted) and
    pricing mode, so a later replay needs the same reservation id."""
    values: dict[str, Any] = {
        ":kind": "reservation",
        ":st": status,
        ":eh": digest,
        ":a": charged,
        ":rel": max(Decimal(0), held - charged),
        ":h": held,
        ":at": at,
        ":held": "held",
        ":ttl": record_ttl(),
    }
    kept = ""
    if tag is not None:
        values[":tag"] = tag
        kept += ", b = :tag"
    if mode is not None:
        values[":mode"] = mode
        kept += ", p = :mode"
    return Update(
        key=items.record_key(wallet_id, HOLD_RECORD, key),
        expression=(
            "SET kind = :kind, st = :st, eh = :eh, charged = :a, released = :rel, "
            f"c = :h, ended = :at, #ttl = :ttl{kept}"
        ),
        condition="attribute_not_exists(pk) OR st = :held",
        names={"#ttl": "ttl"},
        values=values,
    )
