"""Usage: the priced lines an action carries into the ledger, and the rollups made of them.

Pure functions, no I/O. The hot path leaves each action's priced usage lines in its posting
(:func:`encode_line`, ~40 bytes a line); the ledger projector turns them into the entry's
``lines`` (:func:`decode_line`) and adds every entry to three rollups of its wallet
(:func:`rollup_deltas`): the UTC day, the UTC calendar month and the billing period it was
posted in. Reports read those rollups, never the raw ledger.

What counts as usage: charges and reservations — a committed one with what it charged, a
released or expired one as a returned action (no credits). Grants, expiries, adjustments,
transfers and payments move credits but are not usage. A rollup holds:

- ``t`` credits used, ``n`` actions, ``r`` returned actions;
- one attribute per group, credits in it: ``C#<category>``, ``T#<tier>``, ``M#<model>``,
  ``X#<category>#<tier>#<model>`` (the summary's category → tier → model breakdown),
  ``F#<feature>``, ``U#<member_id>``. An action costed in plain credits has no usage lines,
  so it is in no category, tier or model: reports show ``t`` minus the groups' sum as
  ``uncategorized`` (and as no member when no member was named);
- ``s`` the last wallet ``seq`` added (a replayed stream record is at or below it and adds
  nothing) and, on day rollups, ``s0`` the day's first ``seq`` (the activity log's day filter).

:func:`fold` recomputes every rollup from ledger entries: the tests compare it with the table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from credit_meter.core.catalog import Catalog, PricedLine

ROLLUP_PREFIX = "U#"
DAY_PREFIX = "U#D#"
MONTH_PREFIX = "U#M#"
PERIOD_PREFIX = "U#P#"
USAGE_TYPES = frozenset({"charge", "reservation"})
RETURNED = frozenset({"released", "expired"})
TOKEN_METERS = ("input_tokens", "output_tokens", "reasoning_tokens")
UNCATEGORIZED = "uncategorized"  # actions costed in plain credits (or a meter since removed)

# The group attributes, by the report's group_by name.
GROUP_PREFIXES = {
    "category": "C#",
    "tier": "T#",
    "model": "M#",
    "feature": "F#",
    "member": "U#",
}
BREAKDOWN_PREFIX = "X#"


# -- lines ------------------------------------------------------------------------------------


def encode_lines(lines: list[PricedLine]) -> list[str]:
    """The lines a posting carries: one per meter and model (a request that lists one twice
    gets it once, quantities and costs added), so the hot wallet item stays small: at most
    one line per meter (× model), ~40 bytes each."""
    merged: dict[tuple[str, str | None], PricedLine] = {}
    for line in lines:
        key = (line.meter, line.model)
        seen = merged.get(key)
        merged[key] = (
            line
            if seen is None
            else replace(seen, quantity=seen.quantity + line.quantity, cost=seen.cost + line.cost)
        )
    return [encode_line(line) for line in merged.values()]


def encode_line(line: PricedLine) -> str:
    """A priced line as the posting carries it: ``meter|model|quantity|unit price|cost``.

    Meter and model names cannot hold ``|`` (request names are letters, digits and ``_ . : @
    / -``). Category and tier are looked up again by the projector, keeping the hot item small.
    """
    return "|".join(
        (
            line.meter,
            line.model or "",
            _plain(line.quantity),
            _plain(line.unit_price),
            _plain(line.cost),
        )
    )


def decode_line(text: str, cat: Catalog) -> dict[str, Any]:
    """The ledger entry's line for an encoded one (category and tier from the catalog)."""
    meter, model, quantity, unit_price, cost = text.split("|")
    spec = cat.meters.get(meter)
    line: dict[str, Any] = {
        "meter": meter,
        "category": spec.category if spec else UNCATEGORIZED,
        "unit": spec.unit if spec else "unit",
        "unit_price": Decimal(unit_price),
        "quantity": Decimal(quantity),
        "cost": Decimal(cost),
    }
    if model:
        line["model"] = model
        line["tier"] = cat.models.get(model, "unknown")
    return line


def _plain(amount: Decimal) -> str:
    text = f"{amount.normalize():f}"
    return "0" if text in ("-0", "0") else text


# -- rollups ----------------------------------------------------------------------------------


def utc_day(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d")


def day_key(day: str) -> str:
    return f"{DAY_PREFIX}{day}"


def month_key(month: str) -> str:
    return f"{MONTH_PREFIX}{month}"


def period_key(period_start: int) -> str:
    return f"{PERIOD_PREFIX}{period_start:010d}"


@dataclass(slots=True)
class Delta:
    """What a run of entries adds to one rollup item."""

    sums: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    first_seq: int = 0
    last_seq: int = 0

    def add(self, name: str, amount: Decimal) -> None:
        self.sums[name] += amount

    def see(self, seq: int) -> None:
        self.first_seq = seq if not self.first_seq else min(self.first_seq, seq)
        self.last_seq = max(self.last_seq, seq)


def is_usage(entry: dict[str, Any]) -> bool:
    return entry.get("type") in USAGE_TYPES


def _add_usage(delta: Delta, entry: dict[str, Any]) -> None:
    if entry["status"] in RETURNED:
        delta.add("r", Decimal(1))
        return
    used = -Decimal(entry["credits"])
    delta.add("t", used)
    delta.add("n", Decimal(1))
    if entry.get("feature") is not None:
        delta.add(f"F#{entry['feature']}", used)
    if entry.get("member_id") is not None:
        delta.add(f"U#{entry['member_id']}", used)
    for line in entry.get("lines") or ():
        cost = Decimal(line["cost"])
        delta.add(f"C#{line['category']}", cost)
        model = line.get("model")
        if model is not None:
            tier = line.get("tier", "unknown")
            delta.add(f"T#{tier}", cost)
            delta.add(f"M#{model}", cost)
            delta.add(f"X#{line['category']}#{tier}#{model}", cost)


def rollup_deltas(entries: Iterable[dict[str, Any]]) -> dict[str, Delta]:
    """Per rollup sort key, what these entries (one wallet) add to it.

    Every entry marks its UTC day (the day's seq range, for the activity log); usage entries
    also add to the day, the month and the period (``period_start``) they were posted in.
    """
    deltas: dict[str, Delta] = {}
    for entry in entries:
        seq = int(entry["seq"])
        day = utc_day(int(entry["at"]))
        usage = is_usage(entry)
        keys = [day_key(day)]
        if usage:
            keys += [month_key(day[:7]), period_key(int(entry["period_start"]))]
        for key in keys:
            delta = deltas.setdefault(key, Delta())
            delta.see(seq)
            if usage:
                _add_usage(delta, entry)
    return deltas


def fold(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every rollup of one wallet recomputed from its ledger entries: sort key → attributes
    (as the table should hold them, without the key and ``kind``)."""
    result: dict[str, dict[str, Any]] = {}
    for key, delta in rollup_deltas(sorted(entries, key=lambda e: int(e["seq"]))).items():
        item: dict[str, Any] = dict(delta.sums)
        item["s"] = delta.last_seq
        if key.startswith(DAY_PREFIX):
            item["s0"] = delta.first_seq
        result[key] = item
    return result


# -- reading ----------------------------------------------------------------------------------


def groups(item: dict[str, Any] | None, by: str) -> dict[str | None, Decimal]:
    """A rollup's credits by one grouping (``category``, ``tier``, ``model``, ``feature`` or
    ``member``); usage in no group of that kind appears under ``None``."""
    if not item:
        return {}
    prefix = GROUP_PREFIXES[by]
    found: dict[str | None, Decimal] = {
        name[len(prefix) :]: Decimal(value)
        for name, value in item.items()
        if name.startswith(prefix)
    }
    rest = Decimal(item.get("t", 0)) - sum(found.values(), Decimal(0))
    if rest != 0:
        found[None] = rest
    return found


def breakdown(item: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Decimal]]]:
    """Category → tier → model → credits (models priced by tier only; other categories have
    no tiers)."""
    tree: dict[str, dict[str, dict[str, Decimal]]] = {}
    for name, value in (item or {}).items():
        if name.startswith(BREAKDOWN_PREFIX):
            category, tier, model = name[len(BREAKDOWN_PREFIX) :].split("#", 2)
            tree.setdefault(category, {}).setdefault(tier, {})[model] = Decimal(value)
    return tree
