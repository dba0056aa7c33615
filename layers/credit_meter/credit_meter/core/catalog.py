"""The price, plan and bucket-source catalog, read once per cold start from ``catalog.json``.

Token meters are priced per 1,000 tokens by the model's tier; every other meter per unit.
A deployment may point ``CATALOG_PATH`` at its own file of the same shape.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from credit_meter.core.errors import FieldProblem, InvalidRequest
from credit_meter.core.money import quantize

if TYPE_CHECKING:
    from credit_meter.core.offers import Topups

TOKENS_PER_PRICE_UNIT = Decimal(1000)


@dataclass(frozen=True, slots=True)
class UsageLine:
    meter: str
    quantity: Decimal
    model: str | None = None


@dataclass(frozen=True, slots=True)
class PricedLine:
    """One usage line with its price: the unit price (per ``unit``; token meters per 1,000
    tokens, by the model's tier) and the line's share of the request's cost."""

    meter: str
    model: str | None
    tier: str | None
    category: str
    unit: str
    unit_price: Decimal
    quantity: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Meter:
    name: str
    unit: str
    category: str
    credits_per_unit: Decimal | None  # None for token meters, priced by tier
    per_tier: bool


@dataclass(frozen=True, slots=True)
class Source:
    priority: int
    rank: int  # tie-break after expiry: promotional (0) before allowance (1) before paid (2)


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan's monthly terms (docs/domain.md; docs/data-model.md explains each)."""

    name: str
    allowance: Decimal | None  # None: custom, set per wallet
    rollover_cap: Decimal = Decimal(0)  # unused allowance carried into the next period, at most
    purchases_expire_at_reset: bool = False  # purchased credits last one period (else never)
    overage: bool = False  # usage may continue below zero; the deficit is billed, not repaid
    welcome_bonus: Decimal = Decimal(0)  # granted once, when a wallet is created on this plan


@dataclass(frozen=True, slots=True)
class Referral:
    referrer_credits: Decimal
    referee_credits: Decimal
    max_rewarded_per_referrer: int
    expires_in_days: int | None


@dataclass(frozen=True, slots=True)
class Catalog:
    meters: dict[str, Meter]
    tiers: dict[str, dict[str, Decimal]]
    models: dict[str, str]
    plans: dict[str, Plan]
    sources: dict[str, Source]
    default_hold_seconds: int
    max_hold_seconds: int
    max_open_holds: int
    referral: Referral
    topups_json: str = "{}"  # parsed on first use by the top-up routes (``topups``)

    @property
    def topups(self) -> Topups:
        """Credit packs and top-ups by amount (:mod:`credit_meter.core.offers`): parsed when a
        top-up route first needs them, so the metering routes' cold start does not."""
        from credit_meter.core.offers import parse_topups

        return parse_topups(self.topups_json)

    def price(self, usage: list[UsageLine], mode: str | None = None) -> Decimal:
        """The cost of a usage list in credits; unknown meters or models are field problems."""
        return sum((line.cost for line in self.itemise(usage, mode)), Decimal(0))

    def _price_line(self, i: int, line: UsageLine, mode: str | None) -> _Priced | FieldProblem:
        """One usage line priced unrounded, or what is wrong with it (``usage.<i>``)."""
        meter = self.meters.get(line.meter)
        if meter is None:
            return FieldProblem(f"usage.{i}.meter", f"unknown meter {line.meter!r}")
        if not meter.per_tier:
            if line.model is not None:
                return FieldProblem(
                    f"usage.{i}.model", f"meter {meter.name!r} is not priced by model"
                )
            assert meter.credits_per_unit is not None
            unit_price = meter.credits_per_unit if mode != BYPASS else Decimal(0)
            return line, meter, None, unit_price, line.quantity * unit_price
        if line.model is None:
            return FieldProblem(f"usage.{i}.model", f"required for meter {meter.name!r}")
        tier = self.models.get(line.model)
        if tier is None:
            return FieldProblem(f"usage.{i}.model", f"unknown model {line.model!r}")
        unit_price = self.tiers[tier][meter.name]
        if mode is not None:  # BYOK or bypass: the provider bills the tokens
            unit_price = Decimal(0)
        return line, meter, tier, unit_price, line.quantity * unit_price / TOKENS_PER_PRICE_UNIT

    def itemise(self, usage: list[UsageLine], mode: str | None = None) -> list[PricedLine]:
        """Each usage line priced: what the activity log shows and the usage reports add up.

        The lines' costs add up exactly to the request's price (the unrounded total rounded
        once): rounding each line alone could miss it by a millionth, so the difference goes
        to the costliest lines.

        ``mode``: ``byok`` (the member's own provider key pays for the AI tokens: the token
        meters, priced by model, cost nothing; other meters still charge) or ``bypass`` (a
        self-hosted wallet: nothing costs anything). Free lines keep their quantities, with a
        unit price and cost of 0, so the activity log still shows them.
        """
        problems: list[FieldProblem] = []
        priced: list[_Priced] = []
        for i, line in enumerate(usage):
            found = self._price_line(i, line, mode)
            if isinstance(found, FieldProblem):
                problems.append(found)
            else:
                priced.append(found)
        if problems:
            raise InvalidRequest(problems)
        costs = _costs_adding_up([raw for *_, raw in priced])
        return [
            PricedLine(
                meter=m.name,
                model=line.model,
                tier=tier,
                category=m.category,
                unit=m.unit,
                unit_price=unit_price,
                quantity=line.quantity,
                cost=cost,
            )
            for (line, m, tier, unit_price, _), cost in zip(priced, costs, strict=True)
        ]


BYOK, BYPASS = "byok", "bypass"  # pricing modes (see Catalog.itemise)
MODES = (BYOK, BYPASS)


def _decimal(value: object) -> Decimal:
    return Decimal(str(value))


def parse_catalog(raw: dict[str, object]) -> Catalog:
    meters_raw = raw["meters"]
    tiers_raw = raw["tiers"]
    assert isinstance(meters_raw, dict) and isinstance(tiers_raw, dict)
    meters = {
        name: Meter(
            name=name,
            unit=spec["unit"],
            category=spec["category"],
            credits_per_unit=None if spec.get("per_tier") else _decimal(spec["credits_per_unit"]),
            per_tier=bool(spec.get("per_tier")),
        )
        for name, spec in meters_raw.items()
    }
    tiers = {
        tier: {meter: _decimal(price) for meter, price in prices.items()}
        for tier, prices in tiers_raw.items()
    }
    for meter in meters.values():
        if meter.per_tier and any(meter.name not in prices for prices in tiers.values()):
            raise ValueError(f"catalog: token meter {meter.name} lacks a price in some tier")
    models = dict(raw["models"])  # type: ignore[call-overload]
    for model, tier in models.items():
        if tier not in tiers:
            raise ValueError(f"catalog: model {model} has unknown tier {tier}")
    plans_raw = raw["plans"]
    sources_raw = raw["sources"]
    holds = raw["holds"]
    referral = raw["referral"]
    assert isinstance(plans_raw, dict) and isinstance(sources_raw, dict)
    assert isinstance(holds, dict) and isinstance(referral, dict)
    return Catalog(
        meters=meters,
        tiers=tiers,
        models=models,
        plans={name: _plan(name, spec) for name, spec in plans_raw.items()},
        sources={
            name: Source(priority=int(spec["priority"]), rank=int(spec["rank"]))
            for name, spec in sources_raw.items()
        },
        default_hold_seconds=int(holds["default_expires_in_seconds"]),
        max_hold_seconds=int(holds["max_expires_in_seconds"]),
        max_open_holds=int(holds["max_open_per_wallet"]),
        referral=Referral(
            referrer_credits=_decimal(referral["referrer_credits"]),
            referee_credits=_decimal(referral["referee_credits"]),
            max_rewarded_per_referrer=int(referral["max_rewarded_per_referrer"]),
            expires_in_days=_days(referral.get("expires_in_days")),
        ),
        topups_json=json.dumps(raw.get("topups") or {}),  # in its order: packs as listed
    )


def _days(value: object) -> int | None:
    return None if value is None else int(str(value))


def _plan(name: str, spec: dict[str, object]) -> Plan:
    allowance = spec["allowance"]
    purchases = spec.get("purchased_credits", "never_expire")
    if purchases not in ("never_expire", "expire_at_reset"):
        raise ValueError(f"catalog: plan {name}: purchased_credits is {purchases!r}")
    return Plan(
        name=name,
        allowance=None if allowance is None else _decimal(allowance),
        rollover_cap=_decimal(spec.get("rollover_cap", 0)),
        purchases_expire_at_reset=purchases == "expire_at_reset",
        overage=bool(spec.get("overage", False)),
        welcome_bonus=_decimal(spec.get("welcome_bonus", 0)),
    )


@cache
def catalog() -> Catalog:
    """The deployment's catalog, parsed on first use and kept for the life of the process."""
    path = os.environ.get("CATALOG_PATH") or str(Path(__file__).parents[1] / "catalog.json")
    with open(path, encoding="utf-8") as fh:
        return parse_catalog(json.load(fh))


# A usage line priced before rounding: the line, its meter, tier, unit price and raw cost.
_Priced = tuple[UsageLine, Meter, str | None, Decimal, Decimal]


def _costs_adding_up(raws: list[Decimal]) -> list[Decimal]:
    """Each raw cost rounded, the lines adding up exactly to the rounded total: rounding each
    alone could miss it by a millionth, so the difference goes to the costliest lines."""
    total = quantize(sum(raws, Decimal(0)))
    costs = [quantize(raw) for raw in raws]
    left = total - sum(costs, Decimal(0))
    for i in sorted(range(len(costs)), key=lambda i: costs[i], reverse=True):
        if left == 0:
            break
        step = max(left, -costs[i])  # never below zero
        costs[i] += step
        left -= step
    return costs
