"""The price, plan and bucket-source catalog, read once per cold start from ``catalog.json``.

Token meters are priced per 1,000 tokens by the model's tier; every other meter per unit.
A deployment may point ``CATALOG_PATH`` at its own file of the same shape.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path

from credit_meter.errors import FieldProblem, InvalidRequest
from credit_meter.money import quantize

TOKENS_PER_PRICE_UNIT = Decimal(1000)


@dataclass(frozen=True, slots=True)
class UsageLine:
    meter: str
    quantity: Decimal
    model: str | None = None


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
    """A plan's monthly terms (DESIGN §3; docs/data-model.md explains each)."""

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


# Currencies Stripe counts in whole units; every other one in hundredths.
_ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)


def minor_units(currency: str) -> int:
    """How many of the smallest unit Stripe charges make one unit of ``currency``."""
    return 1 if currency in _ZERO_DECIMAL else 100


@dataclass(frozen=True, slots=True)
class Pack:
    """A credit pack: ``credits`` for ``price`` in ``currency`` (lower-case ISO code)."""

    id: str
    name: str
    credits: Decimal
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class FiatTopups:
    """Top-ups of any amount in one currency at a fixed rate of credits per unit."""

    currency: str
    presets: tuple[Decimal, ...]
    minimum: Decimal
    maximum: Decimal
    credits_per_unit: Decimal


@dataclass(frozen=True, slots=True)
class Offer:
    """What one checkout sells: resolved from a pack or an amount (:meth:`Topups.offer`)."""

    offer: str  # the pack id, or "fiat"
    name: str
    credits: Decimal
    amount: int  # in the currency's smallest unit, as Stripe counts
    currency: str


@dataclass(frozen=True, slots=True)
class Topups:
    packs: dict[str, Pack] = field(default_factory=dict)
    fiat: FiatTopups | None = None
    auto_topup_backoff_seconds: int = 3600

    def offer(self, pack: str | None, amount: Decimal | None, currency: str | None) -> Offer:
        """The offer a checkout request names; field problems as the buyer should read them."""
        if (pack is None) == (amount is None):
            raise InvalidRequest([FieldProblem("pack", "give either a pack or an amount")])
        if pack is not None:
            found = self.packs.get(pack)
            if found is None:
                known = ", ".join(sorted(self.packs)) or "none"
                raise InvalidRequest([FieldProblem("pack", f"unknown pack {pack!r} ({known})")])
            if currency is not None and currency.lower() != found.currency:
                raise InvalidRequest(
                    [FieldProblem("currency", f"pack {pack} is sold in {found.currency.upper()}")]
                )
            return Offer(
                found.id,
                found.name,
                found.credits,
                _minor(found.price, found.currency),
                found.currency,
            )
        assert amount is not None
        fiat = self.fiat
        if fiat is None:
            raise InvalidRequest([FieldProblem("amount", "top-ups by amount are not offered")])
        if currency is None:
            raise InvalidRequest([FieldProblem("currency", "required with an amount")])
        if currency.lower() != fiat.currency:
            raise InvalidRequest(
                [FieldProblem("currency", f"top-ups by amount are in {fiat.currency.upper()}")]
            )
        unit = minor_units(fiat.currency)
        problems = []
        if amount < fiat.minimum:
            problems.append(f"must be at least {fiat.minimum} {fiat.currency.upper()}")
        elif amount > fiat.maximum:
            problems.append(f"must be at most {fiat.maximum} {fiat.currency.upper()}")
        if (amount * unit) != (amount * unit).to_integral_value():
            problems.append(f"{fiat.currency.upper()} has {len(str(unit)) - 1} decimal places")
        if problems:
            raise InvalidRequest([FieldProblem("amount", p) for p in problems])
        credits = quantize(amount * fiat.credits_per_unit)
        label = f"{amount.normalize():f} {fiat.currency.upper()}"
        return Offer("fiat", f"{label} top-up", credits, int(amount * unit), fiat.currency)


def _minor(price: Decimal, currency: str) -> int:
    scaled = price * minor_units(currency)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"catalog: price {price} {currency} has too many decimals")
    return int(scaled)


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
    topups: Topups = field(default_factory=Topups)

    def price(self, usage: list[UsageLine]) -> Decimal:
        """The cost of a usage list in credits; unknown meters or models are field problems."""
        problems: list[FieldProblem] = []
        total = Decimal(0)
        for i, line in enumerate(usage):
            meter = self.meters.get(line.meter)
            if meter is None:
                problems.append(FieldProblem(f"usage.{i}.meter", f"unknown meter {line.meter!r}"))
                continue
            if meter.per_tier:
                if line.model is None:
                    problems.append(
                        FieldProblem(f"usage.{i}.model", f"required for meter {meter.name!r}")
                    )
                    continue
                tier = self.models.get(line.model)
                if tier is None:
                    problems.append(
                        FieldProblem(f"usage.{i}.model", f"unknown model {line.model!r}")
                    )
                    continue
                total += line.quantity * self.tiers[tier][meter.name] / TOKENS_PER_PRICE_UNIT
            else:
                if line.model is not None:
                    problems.append(
                        FieldProblem(
                            f"usage.{i}.model", f"meter {meter.name!r} is not priced by model"
                        )
                    )
                    continue
                assert meter.credits_per_unit is not None
                total += line.quantity * meter.credits_per_unit
        if problems:
            raise InvalidRequest(problems)
        return quantize(total)


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
        topups=_topups(raw.get("topups") or {}),
    )


def _topups(raw: object) -> Topups:
    assert isinstance(raw, dict)
    packs = {}
    for pack_id, spec in (raw.get("packs") or {}).items():
        pack = Pack(
            id=pack_id,
            name=str(spec.get("name", pack_id)),
            credits=_decimal(spec["credits"]),
            price=_decimal(spec["price"]),
            currency=str(spec["currency"]).lower(),
        )
        if pack.credits <= 0 or pack.price <= 0:
            raise ValueError(f"catalog: pack {pack_id} needs positive credits and price")
        _minor(pack.price, pack.currency)
        packs[pack_id] = pack
    fiat_raw = raw.get("fiat")
    fiat = None
    if fiat_raw:
        fiat = FiatTopups(
            currency=str(fiat_raw["currency"]).lower(),
            presets=tuple(_decimal(p) for p in fiat_raw.get("presets", [])),
            minimum=_decimal(fiat_raw["minimum"]),
            maximum=_decimal(fiat_raw["maximum"]),
            credits_per_unit=_decimal(fiat_raw["credits_per_unit"]),
        )
        if not 0 < fiat.minimum <= fiat.maximum or fiat.credits_per_unit <= 0:
            raise ValueError("catalog: fiat top-ups need 0 < minimum <= maximum and a rate > 0")
    return Topups(packs, fiat, int(raw.get("auto_topup_backoff_seconds", 3600)))


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
    path = os.environ.get("CATALOG_PATH") or str(Path(__file__).with_name("catalog.json"))
    with open(path, encoding="utf-8") as fh:
        return parse_catalog(json.load(fh))
