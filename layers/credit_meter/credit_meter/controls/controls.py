"""What owners set to keep spending in check: alert thresholds, the period's spending limit and
members' budgets inside a shared wallet.

All of it lives on the wallet item, because the debits test it in their own conditional write
(:mod:`credit_meter.metering.service`): the spending limit as ``lrem`` (room left: limit − used −
held), a member's budget as ``mb.<tag>.r``. Changing a setting moves that room by the difference, in
one write conditioned on the setting it replaces, so debits landing meanwhile are never lost.
The alerts themselves are found on the table's stream (:mod:`credit_meter.core.alerts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit_meter.core import alerts
from credit_meter.core.alerts import Threshold, WalletState
from credit_meter.core.errors import (
    Conflict,
    Contention,
    FieldProblem,
    InvalidRequest,
    MemberBudgetNotFound,
)
from credit_meter.core.ids import member_tag
from credit_meter.core.money import ZERO, quantize
from credit_meter.metering.service import Metering, budget_hints
from credit_meter.storage import wallet_record
from credit_meter.storage.store import Update, WriteRejected

_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Limits:
    wallet_id: str
    period_start: int
    period_end: int
    alert_threshold: Decimal | None
    allowed_limit: Decimal | None
    used: Decimal
    held: Decimal
    remaining: Decimal | None  # what may still be reserved or charged this period
    state: WalletState


@dataclass(frozen=True, slots=True)
class ThresholdStatus:
    threshold: Threshold
    crossed: bool


@dataclass(frozen=True, slots=True)
class Alerts:
    wallet_id: str
    thresholds: list[ThresholdStatus]
    defaults: bool  # the wallet has not chosen its own thresholds
    state: WalletState


@dataclass(frozen=True, slots=True)
class MemberBudget:
    wallet_id: str
    member_id: str
    period_start: int
    period_end: int
    budget: Decimal | None
    used: Decimal  # charged to the budget this period
    held: Decimal  # in the member's open reservations counted against it
    remaining: Decimal | None


def limits_of(wallet: dict[str, Any]) -> Limits:
    used, held = Decimal(wallet["used"]), Decimal(wallet["held"])
    lim = wallet.get("lim")
    lat = wallet.get("lat")
    remaining = None
    if lim is not None:
        remaining = max(ZERO, Decimal(wallet.get("lrem", Decimal(lim) - used - held)))
    return Limits(
        wallet_id=wallet["wallet_id"],
        period_start=int(wallet["ps"]),
        period_end=int(wallet["pe"]),
        alert_threshold=None if lat is None else Decimal(lat),
        allowed_limit=None if lim is None else Decimal(lim),
        used=used,
        held=held,
        remaining=remaining,
        state=alerts.wallet_state(wallet),
    )


def _alerts_of(wallet: dict[str, Any]) -> Alerts:
    return Alerts(
        wallet_id=wallet["wallet_id"],
        thresholds=[
            ThresholdStatus(t, alerts.is_crossed(wallet, t)) for t in alerts.thresholds_of(wallet)
        ],
        defaults="alr" not in wallet,
        state=alerts.wallet_state(wallet),
    )


def _budget_of(wallet: dict[str, Any], tag: str, member_id: str) -> MemberBudget:
    entry = wallet.get("mb", {}).get(tag)
    if entry is None:
        raise MemberBudgetNotFound(f"member {member_id!r} has no budget in this wallet")
    held = sum((Decimal(h["c"]) for h in wallet.get("hd", {}).values() if h.get("b") == tag), ZERO)
    cap = None if "c" not in entry else Decimal(entry["c"])
    return MemberBudget(
        wallet_id=wallet["wallet_id"],
        member_id=entry["n"],
        period_start=int(wallet["ps"]),
        period_end=int(wallet["pe"]),
        budget=cap,
        used=Decimal(entry["u"]),
        held=held,
        remaining=None if cap is None else max(ZERO, Decimal(entry["r"])),
    )


def _limit_or_none(limit: Decimal | None) -> Decimal:
    """What ``lrem`` counts down from: the limit, or without one 10¹⁵."""
    return wallet_record.NO_LIMIT_ROOM if limit is None else limit


def _room_shift(old: Decimal | None, new: Decimal | None) -> Decimal:
    """How far ``lrem`` moves when the limit changes from ``old`` to ``new`` (None: none)."""
    return _limit_or_none(new) - _limit_or_none(old)


def _set_or_remove(name: str, value: Decimal | None, sets: list[str], removes: list[str]) -> None:
    if value is None:
        removes.append(name)
    else:
        sets.append(f"{name} = :{name}")


class Controls(Metering):
    """Limits, alert thresholds and member budgets (one read, one conditional write each)."""

    # -- the spending limit ------------------------------------------------------------------

    def limits(self, wallet_id: str) -> Limits:
        return limits_of(self._wallet_item(wallet_id))

    def set_limits(
        self,
        wallet_id: str,
        alert_threshold: Decimal | None,
        allowed_limit: Decimal | None,
        currency: str | None = None,
    ) -> Limits:
        """Set (or, with None, remove) the period's alert threshold and allowed limit, in
        credits or in the catalog's top-up currency (converted at its rate)."""
        if currency is not None:
            rate = self._credits_per_unit(currency)
            alert_threshold = None if alert_threshold is None else quantize(alert_threshold * rate)
            allowed_limit = None if allowed_limit is None else quantize(allowed_limit * rate)
        if (
            alert_threshold is not None
            and allowed_limit is not None
            and alert_threshold > allowed_limit
        ):
            raise InvalidRequest([FieldProblem("alert_threshold", "must not exceed allowed_limit")])
        for _ in range(_ATTEMPTS):
            wallet = self._wallet_item(wallet_id)
            old = wallet.get("lim")
            old_limit = None if old is None else Decimal(old)
            used, held = Decimal(wallet["used"]), Decimal(wallet["held"])
            # A new limit moves the room by the change of limit (relative: debits landing
            # meanwhile stay counted). A room that does not match what the wallet used and
            # holds (a wallet written before limits existed) is set outright instead,
            # conditioned on both as read.
            exact = (
                "lrem" in wallet
                and Decimal(wallet["lrem"]) == _limit_or_none(old_limit) - used - held
            )
            values: dict[str, Any] = {}
            if exact:
                sets = ["lrem = lrem + :shift"]
                values[":shift"] = _room_shift(old_limit, allowed_limit)
                guard = ""
            else:
                sets = ["lrem = :room"]
                values.update(
                    {":room": _limit_or_none(allowed_limit) - used - held, ":u": used, ":h": held}
                )
                guard = " AND used = :u AND held = :h"
            # A changed limit forgets that the old one refused a debit (``lhit``): reaching
            # the new one fires ``limit.reached`` again.
            removes: list[str] = ["lhit"]
            _set_or_remove("lim", allowed_limit, sets, removes)
            _set_or_remove("lat", alert_threshold, sets, removes)
            if allowed_limit is not None:
                values[":lim"] = allowed_limit
            if alert_threshold is not None:
                values[":lat"] = alert_threshold
            if old_limit is None:
                condition = "attribute_exists(pk) AND attribute_not_exists(lim)" + guard
            else:
                condition = "lim = :old" + guard
                values[":old"] = old_limit
            expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
            try:
                self.store.update(
                    Update(wallet_record.key(wallet_id), expression, condition, values=values)
                )
            except WriteRejected:
                continue  # the limit (or, when set outright, the use) changed: read again
            return self.limits(wallet_id)
        raise Contention(f"the limits of wallet {wallet_id!r} kept changing")

    def _credits_per_unit(self, currency: str) -> Decimal:
        fiat = self.catalog.topups.fiat
        if fiat is None:
            raise InvalidRequest([FieldProblem("currency", "give amounts in credits")])
        if currency.lower() != fiat.currency:
            raise InvalidRequest(
                [FieldProblem("currency", f"give amounts in credits or {fiat.currency.upper()}")]
            )
        return fiat.credits_per_unit

    # -- alert thresholds --------------------------------------------------------------------

    def alerts(self, wallet_id: str) -> Alerts:
        return _alerts_of(self._wallet_item(wallet_id))

    def set_alerts(self, wallet_id: str, thresholds: Sequence[Threshold] | None) -> Alerts:
        """The wallet's thresholds; None goes back to the defaults, an empty list turns
        threshold alerts off (depletion and limit events still fire)."""
        if thresholds is None:
            update = Update(wallet_record.key(wallet_id), "REMOVE alr", "attribute_exists(pk)")
        else:
            update = Update(
                wallet_record.key(wallet_id),
                "SET alr = :alr",
                "attribute_exists(pk)",
                values={":alr": alerts.threshold_items(thresholds)},
            )
        try:
            self.store.update(update)
        except WriteRejected:
            self._wallet_item(wallet_id)  # 404
            raise
        return self.alerts(wallet_id)

    # -- member budgets ----------------------------------------------------------------------

    def member_budget(self, wallet_id: str, member_id: str) -> MemberBudget:
        return _budget_of(self._wallet_item(wallet_id), member_tag(member_id), member_id)

    def member_budgets(self, wallet_id: str) -> list[MemberBudget]:
        wallet = self._wallet_item(wallet_id)
        found = [_budget_of(wallet, tag, e["n"]) for tag, e in wallet.get("mb", {}).items()]
        return sorted(found, key=lambda b: b.member_id)

    def set_member_budget(
        self, wallet_id: str, member_id: str, budget: Decimal | None
    ) -> MemberBudget:
        """Give a member a budget for each period (None: no cap; usage is still counted).

        Usage counts against it from now on: debits made before the budget existed, and holds
        opened before it, are not charged to it.
        """
        tag = member_tag(member_id)
        for _ in range(_ATTEMPTS):
            wallet = self._wallet_item(wallet_id)
            budgets = wallet.get("mb")
            entry = None if budgets is None else budgets.get(tag)
            try:
                if entry is None:
                    if budget is None:
                        raise MemberBudgetNotFound(
                            f"member {member_id!r} has no budget in this wallet"
                        )
                    self._add_budget(wallet_id, tag, member_id, budget, budgets is None)
                else:
                    self._change_budget(wallet_id, tag, entry, budget)
            except WriteRejected as rejected:
                now = rejected.old[0]
                if (
                    now is not None
                    and entry is None
                    and tag not in now.get("mb", {})
                    and len(now.get("mb", {})) >= wallet_record.MAX_MEMBER_BUDGETS
                ):
                    most = wallet_record.MAX_MEMBER_BUDGETS
                    raise Conflict(
                        f"the wallet has budgets for {most} members already",
                        code="too-many-member-budgets",
                    ) from None
                continue  # changed meanwhile: read again
            budget_hints.learn(wallet_id, tag, True)
            return self.member_budget(wallet_id, member_id)
        raise Contention(f"the budget of member {member_id!r} kept changing")

    def _add_budget(
        self, wallet_id: str, tag: str, member_id: str, budget: Decimal, first: bool
    ) -> None:
        entry = {"n": member_id, "c": budget, "r": budget, "u": ZERO}
        if first:  # the wallet's first budget makes the map
            update = Update(
                wallet_record.key(wallet_id),
                "SET mb = :mb",
                "attribute_exists(pk) AND attribute_not_exists(mb)",
                values={":mb": {tag: entry}},
            )
        else:
            update = Update(
                wallet_record.key(wallet_id),
                "SET mb.#t = :e",
                "attribute_exists(mb) AND attribute_not_exists(mb.#t) AND size(mb) < :max",
                names={"#t": tag},
                values={":e": entry, ":max": wallet_record.MAX_MEMBER_BUDGETS},
            )
        self.store.update(update)

    def _change_budget(
        self, wallet_id: str, tag: str, entry: dict[str, Any], budget: Decimal | None
    ) -> None:
        # The room moves by the change of cap (no cap counts as 0: the room then tracks
        # what the member used and holds, below zero), so debits landing meanwhile stay.
        old = None if "c" not in entry else Decimal(entry["c"])
        shift = (budget or ZERO) - (old or ZERO)
        values: dict[str, Any] = {":shift": shift}
        # A changed cap forgets that the old one refused a debit (``h``), as for limits.
        expression = "SET mb.#t.r = mb.#t.r + :shift"
        if budget is None:
            expression += " REMOVE mb.#t.c, mb.#t.h"
        else:
            expression += ", mb.#t.c = :cap REMOVE mb.#t.h"
            values[":cap"] = budget
        if old is None:
            condition = "attribute_exists(mb.#t) AND attribute_not_exists(mb.#t.c)"
        else:
            condition = "mb.#t.c = :old"
            values[":old"] = old
        self.store.update(
            Update(
                wallet_record.key(wallet_id),
                expression,
                condition,
                names={"#t": tag},
                values=values,
            )
        )
