"""The wallet item's attribute names in code (``storage/wallet_record/``) and in the docs
(``docs/data-model.md``, "The wallet item") are the same set: a name added, renamed or dropped
on one side only fails here."""

from __future__ import annotations

import re
from pathlib import Path

from credit_meter.storage import wallet_record

DOC = Path(__file__).parents[2] / "docs" / "data-model.md"


def _documented_names() -> list[str]:
    """The backticked names in the first column of the wallet item's attribute table."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The wallet item", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 3 or set(cells[1].strip()) <= set("-") or cells[1].strip() == "attribute":
            continue
        names += re.findall(r"`([^`]+)`", cells[1])
    return names


def test_the_documented_table_and_the_constants_match_one_to_one() -> None:
    documented = _documented_names()
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert set(documented) == wallet_record.ATTRIBUTES


def test_every_attribute_constant_is_in_the_set() -> None:
    constants = {
        value
        for name, value in vars(wallet_record).items()
        if name.isupper()
        and isinstance(value, str)
        and not name.startswith(("HOLD_", "BUDGET_"))
        # the sort key, index names and the pricing modes it imports are not attributes
        and name not in {"WALLET_SK", "SWEEP_INDEX", "DUE_INDEX", "BYOK", "BYPASS"}
    }
    assert constants == wallet_record.ATTRIBUTES


def test_readers_read_what_the_names_say() -> None:
    item = {
        wallet_record.BALANCE: "12.5",
        wallet_record.HELD: "2",
        wallet_record.HOLDS: {
            "k": {wallet_record.HOLD_CREDITS: "2", wallet_record.HOLD_BUDGET_TAG: "t"}
        },
        wallet_record.MEMBER_BUDGETS: {
            "t": {wallet_record.BUDGET_MEMBER: "ann", wallet_record.BUDGET_ROOM: "3"}
        },
    }
    assert wallet_record.balance(item) == 12.5
    assert wallet_record.held_for_budget(item, "t") == 2
    assert wallet_record.limit(item) is None
    assert wallet_record.budget_cap(wallet_record.member_budgets(item)["t"]) is None
    assert list(wallet_record.open_holds(item)) == ["k"]
