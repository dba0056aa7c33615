"""The offers a wallet's owner can buy credits with (``topups`` in the catalog): credit packs
and top-ups of any amount in one currency, resolved into what one checkout sells. Pure: the
payment provider that charges for them is :mod:`credit_meter.payments`'s."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from credit_meter.core.errors import FieldProblem, InvalidRequest
from credit_meter.core.money import quantize

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


@cache
def parse_topups(text: str) -> Topups:
    """The catalog's ``topups`` (JSON text, so that it is parsed once per catalog)."""
    raw = json.loads(text)
    assert isinstance(raw, dict)
    packs = {}
    for pack_id, spec in (raw.get("packs") or {}).items():
        pack = Pack(
            id=pack_id,
            name=str(spec.get("name", pack_id)),
            credits=_dec(spec["credits"]),
            price=_dec(spec["price"]),
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
            presets=tuple(_dec(p) for p in fiat_raw.get("presets", [])),
            minimum=_dec(fiat_raw["minimum"]),
            maximum=_dec(fiat_raw["maximum"]),
            credits_per_unit=_dec(fiat_raw["credits_per_unit"]),
        )
        if not 0 < fiat.minimum <= fiat.maximum or fiat.credits_per_unit <= 0:
            raise ValueError("catalog: fiat top-ups need 0 < minimum <= maximum and a rate > 0")
    return Topups(packs, fiat, int(raw.get("auto_topup_backoff_seconds", 3600)))


def _dec(value: object) -> Decimal:
    return Decimal(str(value))
