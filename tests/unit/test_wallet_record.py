"""The wallet item's attribute names in code (``storage/wallet_record/``) and in the docs
(``docs/data-model.md``, "The wallet item") are the same set: a name added, renamed or dropped
on one side only fails here."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from credit_meter.storage import wallet_record
from credit_meter.storage.store import Update
from credit_meter.storage.wallet_record import ZERO

DOC = Path(__file__).parents[2] / "docs" / "data-model.md"
D1 = Decimal(1)


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


# -- the lifecycle builders spell exactly the expressions the use cases wrote before ----------
# The literals below are the strings billing/, payments/ and byok/ held before the builders
# moved into ``wallet_record.lifecycle``: same expression, same condition, same race safety.

W = "w_1"


def _strings(update: Update) -> tuple[str, str | None]:
    return update.expression, update.condition


def test_plain_updates_are_the_expressions_they_replace() -> None:
    wr = wallet_record
    post: dict[str, Any] = {}
    debit = (
        "SET bal = bal - :a, avail = avail - :a, drawn = drawn + :a, seq = seq + :one, "
        "posts = :posts"
    )
    assert _strings(wr.adjustment_debit_update(W, D1, post)) == (debit, "attribute_exists(pk)")
    assert _strings(wr.transfer_debit_update(W, D1, post)) == (
        debit,
        "attribute_exists(pk) AND avail >= :a",
    )
    assert _strings(wr.join_org_update(W, "o")) == (
        "SET org = :org",
        "attribute_exists(pk) AND attribute_not_exists(org)",
    )
    assert _strings(wr.bypass_update(W, True)) == ("SET bp = :on", "attribute_exists(pk)")
    assert _strings(wr.bypass_update(W, False)) == ("REMOVE bp", "attribute_exists(pk)")
    assert _strings(wr.pending_plan_clear_update(W, 3)) == (
        "SET bver = bver + :one REMOVE pn, pa, posts",
        "bver = :bver",
    )
    assert _strings(wr.pending_plan_update(W, 3, "pro", D1)) == (
        "SET pn = :plan, pa = :allow, bver = bver + :one REMOVE posts",
        "bver = :bver",
    )
    assert _strings(wr.reschedule_update(W, 3, 9)) == (
        "SET due_at = :due, due_shard = :dsh REMOVE posts",
        "bver = :bver",
    )
    assert _strings(wr.byok_member_update(W, "u", True)) == ("ADD #ky :u", "attribute_exists(pk)")
    assert _strings(wr.byok_member_update(W, "u", False)) == (
        "DELETE #ky :u",
        "attribute_exists(pk)",
    )


def test_auto_topup_updates_are_the_expressions_they_replace() -> None:
    wr = wallet_record
    assert _strings(wr.auto_topup_settings_update(W, D1)) == (
        "SET atx = :x, ats = if_not_exists(ats, :armed), atn = if_not_exists(atn, :zero)",
        "attribute_exists(pk)",
    )
    assert _strings(wr.auto_topup_settings_update(W, None)) == (
        "REMOVE atx",
        "attribute_exists(pk)",
    )
    assert _strings(wr.auto_topup_rearm_update(W)) == (
        "SET ats = :armed REMOVE atb",
        "ats = :declined",
    )
    assert _strings(wr.auto_topup_state_update(W, 1, "fired", "armed")) == (
        "SET ats = :s REMOVE atb",
        "ats = :seen AND atn = :n",
    )
    assert _strings(wr.auto_topup_fire_update(W, 1, "armed")) == (
        "SET ats = :fired, atn = :next REMOVE atb",
        "ats = :seen AND atn = :n AND avail < atx",
    )
    assert _strings(wr.auto_topup_declined_update(W, 1, 99)) == (
        "SET ats = :d, atb = :until",
        "atn = :n AND ats = :fired",
    )


def test_bucket_change_guards_are_the_expressions_they_replace() -> None:
    wr = wallet_record
    assert wr.void_guard(D1, D1)[0] == "avail >= :amt AND drawn <= :before"
    assert wr.not_referred_guard() == "attribute_not_exists(rby)"
    assert wr.roll_guard(5, None) == ("pe = :pe", {":pe": 5})
    assert wr.roll_guard(5, D1)[0] == "pe = :pe AND avail >= :floor"
    clauses, values, names = wr.period_reset_clauses(D1, [("a", ZERO), ("b", D1)])
    assert clauses == (
        "used = used - :used",
        "lrem = if_not_exists(lrem, :unl) + :used",
        "mb.#m1.r = mb.#m1.r + :u1",
        "mb.#m1.u = mb.#m1.u - :u1",
    )
    assert names == {"#m1": "b"} and values[":u1"] == D1 and ":u0" not in values
    roll_condition, roll_values = wr.roll_guard(5, D1)
    change = wr.BucketChange(
        buckets=[],
        drawn_delta=ZERO,
        balance_delta=D1,
        posts=[],
        period_end=5,
        sets={wr.PLAN: "pro"},
        removes=(wr.PENDING_PLAN, wr.PENDING_ALLOWANCE),
        clauses=clauses,
        condition=roll_condition,
        values={**roll_values, **values},
        names=names,
    )
    update = wr.bucket_update(W, {wr.BUCKETS_VERSION: 3}, change)
    assert _strings(update) == (
        "SET bk = :bk, bver = bver + :one, drawn = drawn + :dd, bal = bal + :g, "
        "avail = avail + :g, seq = seq + :n, posts = :posts, due_at = :due, "
        "due_shard = :dsh, #s0 = :s0, used = used - :used, "
        "lrem = if_not_exists(lrem, :unl) + :used, mb.#m1.r = mb.#m1.r + :u1, "
        "mb.#m1.u = mb.#m1.u - :u1 REMOVE #r0, #r1",
        "bver = :bver AND pe = :pe AND avail >= :floor",
    )
    assert update.names == {"#s0": "plan", "#m1": "b", "#r0": "pn", "#r1": "pa"}


# -- the rule from now on: no use case spells a wallet attribute in an expression ------------

PACKAGE = Path(wallet_record.__file__).parents[2]
USE_CASES = ("metering", "billing", "payments", "controls", "reports", "byok", "api")
_EXPRESSION = re.compile(
    r"\b(SET|REMOVE|ADD|DELETE) |attribute_(not_)?exists\(|if_not_exists\("
    r"|(=|<>|<=|>=|<|>|[-+])\s*:\w|:\w+\s*(=|<>|<=|>=|<|>)"
)
# Names (not after "#", ":" or ".") in an expression: attribute names or keywords.
_NAME = re.compile(r"(?<![#:.\w])[A-Za-z_]\w*")
# Every item tells its type in ``kind``: on another item (hold and payment records) it is not
# the wallet's attribute.
_SHARED = {wallet_record.KIND}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            found.add(id(body[0].value))
    return found


def _wallet_names_in_expressions(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    skipped = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skipped
            and _EXPRESSION.search(node.value)
        ):
            named = set(_NAME.findall(node.value)) & (wallet_record.ATTRIBUTES - _SHARED)
            hits += [(node.lineno, name) for name in sorted(named)]
    return hits


def test_the_scan_sees_an_expression_that_names_a_wallet_attribute() -> None:
    assert _wallet_names_in_expressions('x = "SET bal = bal - :a"') == [(1, "bal")]
    assert _wallet_names_in_expressions('c = f" AND avail >= {a}"') == []  # no placeholder
    assert _wallet_names_in_expressions('c = " AND avail >= :floor"') == [(1, "avail")]
    assert _wallet_names_in_expressions('c = "attribute_not_exists(rby)"') == [(1, "rby")]
    assert _wallet_names_in_expressions('c = ("used = used - :used",)') == [(1, "used")]
    assert _wallet_names_in_expressions('c = "SET kind = :k, st = :st"') == []
    assert _wallet_names_in_expressions('"""SET bal = bal - :a, a docstring."""') == []


def test_no_use_case_spells_a_wallet_attribute_in_an_expression() -> None:
    """Expressions on the wallet item are built in ``storage/wallet_record/`` only; a use case
    calls a named builder there (docs/data-model.md, "Writes and the conditions that guard
    them")."""
    found = []
    for package in USE_CASES:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for line, name in _wallet_names_in_expressions(path.read_text(encoding="utf-8")):
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {name}")
    assert found == []
