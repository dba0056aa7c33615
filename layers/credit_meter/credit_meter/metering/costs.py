"""What an action costs, and its price in each pricing mode a debit tries."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from credit_meter.core.catalog import BYPASS, Catalog, UsageLine
from credit_meter.core.errors import FieldProblem, InvalidRequest
from credit_meter.core.money import ZERO
from credit_meter.core.usage import encode_lines


@dataclass(frozen=True, slots=True)
class Cost:
    """What an action costs: explicit credits or a usage list priced through the catalog."""

    credits: Decimal | None = None
    usage: tuple[UsageLine, ...] | None = None

    def resolve(self, cat: Catalog, mode: str | None = None) -> Decimal | None:
        return self.itemise(cat, mode)[0]

    def itemise(
        self, cat: Catalog, mode: str | None = None
    ) -> tuple[Decimal | None, list[str] | None]:
        """The cost, and the priced usage lines as the posting carries them to the ledger
        (:func:`credit_meter.core.usage.encode_line`); no lines for a cost given in credits.
        ``mode`` (:meth:`Catalog.itemise`): under ``bypass`` nothing costs anything, credits
        given outright included; under ``byok`` credits given outright are charged as given
        (they do not say which part was AI tokens)."""
        if self.credits is not None:
            return (ZERO if mode == BYPASS else self.credits), None
        if self.usage is not None:
            lines = cat.itemise(list(self.usage), mode)
            return sum((x.cost for x in lines), ZERO), encode_lines(lines)
        return None, None


class Prices:
    """A cost priced in each mode a debit tries (usually one), each once."""

    def __init__(self, cost: Cost, cat: Catalog) -> None:
        self._cost, self._catalog = cost, cat
        self._priced: dict[str | None, tuple[Decimal | None, list[str] | None]] = {}

    def __call__(self, mode: str | None) -> tuple[Decimal, list[str] | None]:
        if mode not in self._priced:
            self._priced[mode] = self._cost.itemise(self._catalog, mode)
        amount, lines = self._priced[mode]
        if amount is None:
            raise InvalidRequest([FieldProblem("credits", "give credits or usage")])
        return amount, lines
