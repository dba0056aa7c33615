"""Usage reports: the wallet's summary, its usage series, the activity log and the
organisation's totals. They read the rollups the projector keeps (:mod:`credit_meter.core.usage`),
never the raw ledger, so what they read does not grow with the number of events:

- summary: one BatchGetItem (the wallet and the last 7 day rollups), then one GetItem (the
  rollup of the wallet's period);
- series: one Query of at most 90 day rollups or 24 month rollups;
- organisation: one Query of its wallet list, then a BatchGetItem of their month rollups;
- activity log: Query pages of ledger entries (a day's entries found by that day's ``seq``
  range in its rollup).

Days and months are UTC. Rollups trail the wallet by the stream's delay (see docs/reports.md);
the summary's balance, ``used`` and ``held`` are read from the wallet itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from credit_meter.core import clock
from credit_meter.core.errors import FieldProblem, InvalidRequest, OrgNotFound, WalletNotFound
from credit_meter.core.money import QUANTUM, ZERO
from credit_meter.core.usage import (
    MONTH_PREFIX,
    UNCATEGORIZED,
    breakdown,
    day_key,
    groups,
    month_key,
    period_key,
)
from credit_meter.core.wallets import Entry
from credit_meter.storage import items, wallet_record
from credit_meter.storage.items import ENTRY_PREFIX
from credit_meter.storage.pages import decode_cursor, encode_cursor
from credit_meter.storage.store import Store

if TYPE_CHECKING:
    from collections.abc import Callable

BURN_WINDOW_DAYS = 7
MAX_DAYS = 90
MAX_MONTHS = 24
MAX_ORG_MONTHS = 12
TOP_CONSUMERS = 10
# The activity log reads at most this many entries a request when filters skip most of them;
# it then answers with what it found and a cursor to go on from.
ACTIVITY_READ_PAGES = 10


@dataclass(frozen=True, slots=True)
class Forecast:
    burn_rate_per_day: Decimal  # credits a day over the trailing window
    runs_out_on: date | None  # None: not before the period renews (or nothing is used)


@dataclass(frozen=True, slots=True)
class CategoryUsage:
    category: str
    credits: Decimal
    tiers: dict[str, dict[str, Decimal]]  # tier → model → credits


@dataclass(frozen=True, slots=True)
class Summary:
    wallet_id: str
    plan: str
    period_start: int
    period_end: int
    allowance: Decimal
    used: Decimal
    held: Decimal
    balance: Decimal
    remaining: Decimal  # available: balance - held
    percent_used: Decimal | None  # of the allowance; None without one
    breakdown: list[CategoryUsage]
    forecast: Forecast


@dataclass(frozen=True, slots=True)
class Point:
    label: str  # YYYY-MM-DD or YYYY-MM
    credits: Decimal
    actions: int
    returned: int
    groups: dict[str | None, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Series:
    wallet_id: str
    granularity: str
    first: str
    last: str
    group_by: str | None
    points: list[Point]

    @property
    def total(self) -> Decimal:
        return sum((p.credits for p in self.points), ZERO)


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    day: date | None = None
    type: str | None = None
    member_id: str | None = None
    feature: str | None = None


@dataclass(frozen=True, slots=True)
class WalletUsage:
    wallet_id: str
    credits: Decimal
    actions: int


@dataclass(frozen=True, slots=True)
class MemberUsage:
    wallet_id: str
    member_id: str | None
    credits: Decimal


@dataclass(frozen=True, slots=True)
class OrgUsage:
    org_id: str
    first: str
    last: str
    credits: Decimal
    actions: int
    months: list[tuple[str, Decimal]]
    wallets: list[WalletUsage]
    members: list[MemberUsage]
    top_consumers: list[tuple[str, Decimal]]  # member_id → credits, over all its wallets


def today() -> date:
    return clock.now().date()


def _month(d: date) -> str:
    return d.strftime("%Y-%m")


def _add_months(month: str, n: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + mon - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> int:
    return (int(last[:4]) * 12 + int(last[5:7])) - (int(first[:4]) * 12 + int(first[5:7])) + 1


def _int(value: Any) -> int:
    return int(Decimal(value or 0))


class Reports:
    def __init__(self, store: Store | None = None) -> None:
        self.store = store or Store()

    # -- summary ------------------------------------------------------------------------------

    def summary(self, wallet_id: str) -> Summary:
        pk = items.wallet_pk(wallet_id)
        now = today()
        window = [now - timedelta(days=i) for i in range(BURN_WINDOW_DAYS)]
        # The wallet and the window's day rollups in one request, then the period's rollup
        # (its key is the wallet's period start).
        keys = [wallet_record.key(wallet_id)]
        keys += [{"pk": pk, "sk": day_key(d.isoformat())} for d in window]
        found = self.store.batch_get(keys)
        wallet = next((i for i in found if i["sk"] == wallet_record.WALLET_SK), None)
        if wallet is None:
            raise WalletNotFound(f"wallet {wallet_id} does not exist")
        period = self.store.get({"pk": pk, "sk": period_key(wallet_record.period_start(wallet))})
        burned = sum(
            (Decimal(i.get("t", 0)) for i in found if i["sk"] != wallet_record.WALLET_SK), ZERO
        )
        view = wallet_record.view(wallet)
        rate = (burned / BURN_WINDOW_DAYS).quantize(QUANTUM)
        remaining = view.available
        runs_out: date | None = None
        if remaining <= 0:
            runs_out = now
        elif rate > 0:
            # compared in days first: a tiny rate would put the date past year 9999
            left = (Decimal(view.period_end) - Decimal(clock.now_ts())) / 86400
            lasts = remaining / rate  # days
            if lasts < left:
                runs_out = (clock.now() + timedelta(days=float(lasts))).date()
        percent = None
        if view.allowance > 0:
            percent = (view.used * 100 / view.allowance).quantize(Decimal("0.1"))
        return Summary(
            wallet_id=wallet_id,
            plan=view.plan,
            period_start=view.period_start,
            period_end=view.period_end,
            allowance=view.allowance,
            used=view.used,
            held=view.held,
            balance=view.balance,
            remaining=remaining,
            percent_used=percent,
            breakdown=_categories(period),
            forecast=Forecast(rate, runs_out),
        )

    # -- series -------------------------------------------------------------------------------

    def series(
        self,
        wallet_id: str,
        granularity: str,
        first: str | None,
        last: str | None,
        group_by: str | None,
    ) -> Series:
        pk = items.wallet_pk(wallet_id)
        if granularity == "day":
            end = _day(last, "to") if last else today()
            start = _day(first, "from") if first else end - timedelta(days=29)
            count = (end - start).days + 1
            _check_range(count, MAX_DAYS, "days")
            labels = [(start + timedelta(days=i)).isoformat() for i in range(count)]
            key: Callable[[str], str] = day_key
        else:
            end_month = _month_of(last, "to") if last else _month(today())
            start_month = _month_of(first, "from") if first else _add_months(end_month, -11)
            count = months_between(start_month, end_month)
            _check_range(count, MAX_MONTHS, "months")
            labels = [_add_months(start_month, i) for i in range(count)]
            key = month_key
        found = {i["sk"]: i for i in self.store.query_between(pk, key(labels[0]), key(labels[-1]))}
        if not found:
            self._wallet_exists(wallet_id)
        points = []
        for label in labels:
            item = found.get(key(label))
            points.append(
                Point(
                    label=label,
                    credits=Decimal((item or {}).get("t", 0)),
                    actions=_int((item or {}).get("n")),
                    returned=_int((item or {}).get("r")),
                    groups=groups(item, group_by) if group_by else {},
                )
            )
        return Series(wallet_id, granularity, labels[0], labels[-1], group_by, points)

    # -- the activity log ---------------------------------------------------------------------

    def activity(
        self, wallet_id: str, where: ActivityFilter, limit: int, cursor: str | None
    ) -> tuple[list[Entry], str | None]:
        """Ledger entries, newest first, that pass the filters; fewer than ``limit`` with a
        cursor when the filters skipped many entries (ask again from the cursor)."""
        pk = items.wallet_pk(wallet_id)
        low, high = f"{ENTRY_PREFIX}", f"{ENTRY_PREFIX}~"
        conditions: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if where.day is not None:
            day = self.store.get({"pk": pk, "sk": day_key(where.day.isoformat())})
            if day is None:
                self._wallet_exists(wallet_id)
                return [], None
            low, high = _entry_key(int(day["s0"])), _entry_key(int(day["s"]))
            start = datetime(where.day.year, where.day.month, where.day.day, tzinfo=UTC)
            names["#at"] = "at"
            values[":at0"] = int(start.timestamp() * 1000)
            values[":at1"] = int((start + timedelta(days=1)).timestamp() * 1000) - 1
            conditions.append("#at BETWEEN :at0 AND :at1")
        for name, attribute, value in (
            ("type", "type", where.type),
            ("member", "member_id", where.member_id),
            ("feature", "feature", where.feature),
        ):
            if value is not None:
                names[f"#{name}"] = attribute
                values[f":{name}"] = value
                conditions.append(f"#{name} = :{name}")
        after = None if cursor is None else _entry_seq(cursor)
        found: list[Entry] = []
        page = limit if not conditions else max(limit, 100)
        for _ in range(ACTIVITY_READ_PAGES):
            if after is not None:  # the page below the cursor (a cursor from elsewhere: empty)
                high = min(high, _entry_key(after - 1))
            if after == 0 or high < low:
                break
            batch, last = self.store.query_filtered(
                pk, low, high, page, " AND ".join(conditions) or None, names, values
            )
            for item in batch:
                found.append(items.entry(item))
                if len(found) == limit:
                    more = last is not None or item is not batch[-1]
                    return found, encode_cursor(item["sk"]) if more else None
            if last is None:
                break
            after = int(last[len(ENTRY_PREFIX) :])
        else:  # read as much as one request may: go on from where the reading stopped
            if not found:
                self._wallet_exists(wallet_id)
            return found, None if after is None else encode_cursor(_entry_key(after))
        if not found:  # an empty page of an unknown wallet is a 404
            self._wallet_exists(wallet_id)
        return found, None

    # -- organisations ------------------------------------------------------------------------

    def org_usage(self, org_id: str, first: str | None, last: str | None) -> OrgUsage:
        end = last or _month(today())
        start = first or end
        count = months_between(start, end)
        _check_range(count, MAX_ORG_MONTHS, "months")
        labels = [_add_months(start, i) for i in range(count)]
        org = items.org_pk(org_id)
        wallets = [
            i["wallet_id"]
            for i in self.store.query_between(org, items.wallet_pk(""), items.wallet_pk("~"))
        ]
        if not wallets:
            raise OrgNotFound(f"organisation {org_id} has no wallets")
        keys = [{"pk": items.wallet_pk(w), "sk": month_key(m)} for w in wallets for m in labels]
        rollups = self.store.batch_get(keys)
        by_wallet: dict[str, list[dict[str, Any]]] = {w: [] for w in wallets}
        by_month: dict[str, Decimal] = dict.fromkeys(labels, ZERO)
        for item in rollups:
            by_wallet[item["pk"].removeprefix(items.wallet_pk(""))].append(item)
            by_month[item["sk"][len(MONTH_PREFIX) :]] += Decimal(item.get("t", 0))
        wallet_rows, member_rows = [], []
        consumers: dict[str, Decimal] = {}
        for wallet_id, found in by_wallet.items():
            credits = sum((Decimal(i.get("t", 0)) for i in found), ZERO)
            actions = sum(_int(i.get("n")) for i in found)
            wallet_rows.append(WalletUsage(wallet_id, credits, actions))
            members: dict[str | None, Decimal] = {}
            for item in found:
                for member, amount in groups(item, "member").items():
                    members[member] = members.get(member, ZERO) + amount
            for member, amount in members.items():
                member_rows.append(MemberUsage(wallet_id, member, amount))
                if member is not None:
                    consumers[member] = consumers.get(member, ZERO) + amount
        wallet_rows.sort(key=lambda w: (-w.credits, w.wallet_id))
        member_rows.sort(key=lambda m: (-m.credits, m.wallet_id, m.member_id or ""))
        top = sorted(consumers.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CONSUMERS]
        return OrgUsage(
            org_id=org_id,
            first=labels[0],
            last=labels[-1],
            credits=sum((w.credits for w in wallet_rows), ZERO),
            actions=sum(w.actions for w in wallet_rows),
            months=list(by_month.items()),
            wallets=wallet_rows,
            members=member_rows,
            top_consumers=top,
        )

    def _wallet_exists(self, wallet_id: str) -> None:
        if self.store.get(wallet_record.key(wallet_id)) is None:
            raise WalletNotFound(f"wallet {wallet_id} does not exist")


def _entry_key(seq: int) -> str:
    return f"{ENTRY_PREFIX}{seq:012d}"


def _entry_seq(cursor: str) -> int:
    """The ledger position a cursor of the activity log stands for (a 422 for anything else)."""
    key = decode_cursor(cursor, ENTRY_PREFIX)
    digits = key[len(ENTRY_PREFIX) :]
    if len(digits) != 12 or not digits.isascii() or not digits.isdigit():
        raise InvalidRequest([FieldProblem("cursor", "is not a cursor this list returned")])
    return int(digits)


def _day(text: str, name: str) -> date:
    if len(text) != 10:
        raise InvalidRequest([FieldProblem(name, "must be a day, YYYY-MM-DD")])
    return date.fromisoformat(text)


def _month_of(text: str, name: str) -> str:
    if len(text) != 7:
        raise InvalidRequest([FieldProblem(name, "must be a month, YYYY-MM")])
    return text


def _check_range(count: int, most: int, unit: str) -> None:
    if count < 1:
        raise InvalidRequest([FieldProblem("from", "must not be after to")])
    if count > most:
        raise InvalidRequest([FieldProblem("from", f"the range is at most {most} {unit}")])


def _categories(period: dict[str, Any] | None) -> list[CategoryUsage]:
    """The period's usage by category, each by tier and model (largest first); usage costed
    in plain credits is the category ``uncategorized``."""
    tree = breakdown(period)
    totals: dict[str, Decimal] = {}
    for category, credits in groups(period, "category").items():
        name = category or UNCATEGORIZED  # also a meter the catalog no longer knows
        totals[name] = totals.get(name, ZERO) + credits
    result = [CategoryUsage(name, c, tree.get(name, {})) for name, c in totals.items()]
    return sorted(result, key=lambda c: (-c.credits, c.category))
