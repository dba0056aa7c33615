"""What a debit assumes about its wallet without reading it, and how a wrong guess is mended.

A debit's single write cannot know beforehand whether the member has a budget or how the
wallet prices the member's debits (credits, BYOK, bypass). It guesses from what this process
last saw, says so in its condition, and a refusal whose old item shows the truth is made once
more the right way (docs/data-model.md, "Limits and member budgets").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from credit_meter.core.catalog import BYOK, BYPASS
from credit_meter.storage import wallet_record
from credit_meter.storage.store import WriteRejected
from credit_meter.storage.wallet_record import DebitTerms, Item


def wallet_mode(wallet: Item, member_id: str | None) -> str | None:
    """How a wallet prices a member's debits: bypass (``bp``) for everyone, BYOK for the
    members whose own key is active (``ky``, kept by :mod:`credit_meter.byok.keys`), else
    credits."""
    if wallet_record.bypass(wallet):
        return BYPASS
    if member_id is not None and member_id in wallet_record.byok_members(wallet):
        return BYOK
    return None


@dataclass(frozen=True, slots=True)
class Guess:
    """What a debit's write assumes: whether the member has a budget, and how the debit is
    priced (``mode``: None for credits, ``byok`` when the member's own provider key pays the
    AI tokens, ``bypass`` for a self-hosted wallet)."""

    budgeted: bool = False
    mode: str | None = None

    def terms(self, member_id: str | None, tag: str | None) -> DebitTerms:
        return DebitTerms(member_id, tag, self.budgeted, self.mode)


class BudgetHints:
    """Which (wallet, member) pairs have a budget, as far as this process has seen. Only saves
    a round trip: a wrong guess is refused by the write's condition and corrected."""

    _MAX = 50_000

    def __init__(self) -> None:
        self._known: set[tuple[str, str]] = set()

    def known(self, wallet_id: str, tag: str) -> bool:
        return (wallet_id, tag) in self._known

    def learn(self, wallet_id: str, tag: str, budgeted: bool) -> None:
        if not budgeted:
            self._known.discard((wallet_id, tag))
            return
        if len(self._known) >= self._MAX:
            self._known.clear()
        self._known.add((wallet_id, tag))


class ModeHints:
    """Which (wallet, member) pairs are priced in another mode than credits (BYOK, bypass), as
    far as this process has seen. Like :class:`BudgetHints`, only saves a round trip."""

    _MAX = 50_000

    def __init__(self) -> None:
        self._modes: dict[tuple[str, str | None], str] = {}

    def guess(self, wallet_id: str, member_id: str | None) -> str | None:
        return self._modes.get((wallet_id, member_id))

    def learn(self, wallet_id: str, member_id: str | None, mode: str | None) -> None:
        if mode is None:
            self._modes.pop((wallet_id, member_id), None)
            return
        if len(self._modes) >= self._MAX:
            self._modes.clear()
        self._modes[(wallet_id, member_id)] = mode


# Per process (a warm Lambda keeps them); read through the module so tests can swap them.
budget_hints = BudgetHints()
mode_hints = ModeHints()


def _actual(
    rejected: WriteRejected, key: str, tag: str | None, member_id: str | None
) -> Guess | None:
    """What a refused debit should have assumed, from the old wallet the refusal returned;
    None when the refusal is not about a guess (no wallet, or a replay: the record answers)."""
    wallet = rejected.old[0]
    if wallet is None or any(old is not None for old in rejected.old[1:]):
        return None  # no wallet, or a replay: the record answers
    if key in wallet_record.open_holds(wallet):
        return None  # a replay of an open hold
    budgeted = tag is not None and tag in wallet_record.member_budgets(wallet)
    return Guess(budgeted, wallet_mode(wallet, member_id))


def debit(
    wallet_id: str,
    key: str,
    tag: str | None,
    member_id: str | None,
    write: Callable[[Guess], None],
) -> Guess:
    """Make a debit's write guessing, from what this process has seen, whether the member
    (``tag``) has a budget and how the wallet prices the debit; returns the guess the write
    succeeded with. A refusal whose old item shows the guess was wrong is made again the
    right way (a budget, a BYOK key or bypass mode set or first seen meanwhile); any
    other refusal is raised, as is a second one."""
    guess = Guess(
        tag is not None and budget_hints.known(wallet_id, tag),
        mode_hints.guess(wallet_id, member_id),
    )
    try:
        write(guess)
        return guess
    except WriteRejected as rejected:
        actual = _actual(rejected, key, tag, member_id)
        if actual is None or actual == guess:
            raise
    if tag is not None:
        budget_hints.learn(wallet_id, tag, actual.budgeted)
    mode_hints.learn(wallet_id, member_id, actual.mode)
    write(actual)
    return actual
