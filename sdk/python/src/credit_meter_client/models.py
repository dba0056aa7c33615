"""Response models of the Credit Meter API, generated from docs/openapi.yaml.

Do not edit by hand: run ``python sdk/python/tools/gen_models.py``. Amounts are ``Decimal``,
times ``datetime``; fields the server adds later are ignored, so an older SDK keeps working.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from credit_meter_client._model import Model

__all__ = ['AdjustmentOut', 'AlertsOut', 'AutoTopupOut', 'BucketOut', 'ByokOut', 'CategoryOut', 'ChargeOut', 'CheckoutOut', 'ClockOut', 'CommitOut', 'ConsumerOut', 'FiatLimitsOut', 'FiatOut', 'ForecastOut', 'GrantLineOut', 'GrantOut', 'GrantsOut', 'GroupOut', 'LimitsOut', 'LineOut', 'MemberBudgetOut', 'MemberBudgetsOut', 'MeterOut', 'ModelTierOut', 'ModelUsageOut', 'OffersOut', 'OrgMemberOut', 'OrgMonthOut', 'OrgUsageOut', 'OrgWalletOut', 'PackOut', 'PaymentOut', 'PaymentsOut', 'PeriodOut', 'PlanOut', 'PointOut', 'PricesOut', 'ProblemOut', 'PromoCodeOut', 'QuoteOut', 'ReferralOut', 'ReleaseOut', 'ReservationOut', 'SeriesOut', 'SpendingOut', 'SummaryOut', 'ThresholdOut', 'TierUsageOut', 'TokensOut', 'TransactionOut', 'TransactionsOut', 'TransferOut', 'VoidOut', 'WalletOut', 'WebhookOut']



@dataclass(frozen=True)
class AdjustmentOut(Model):
    adjustment_id: str
    credits: Decimal
    reason: str


@dataclass(frozen=True)
class AlertsOut(Model):
    wallet_id: str
    thresholds: list[ThresholdOut]
    defaults: bool
    state: str


@dataclass(frozen=True)
class AutoTopupOut(Model):
    wallet_id: str
    enabled: bool
    threshold: Decimal | None
    pack: str | None
    has_payment_method: bool
    state: str | None
    retry_after: _dt.datetime | None
    last_attempt: dict[str, Any] | None


@dataclass(frozen=True)
class BucketOut(Model):
    source: str
    remaining: Decimal
    expires_at: _dt.datetime | None
    priority: int


@dataclass(frozen=True)
class ByokOut(Model):
    """What may be shown of a stored key: never the key, only its last four characters."""

    provider: str
    last4: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class CategoryOut(Model):
    category: str
    credits: Decimal
    tiers: list[TierUsageOut]


@dataclass(frozen=True)
class ChargeOut(Model):
    charge_id: str
    charged: Decimal


@dataclass(frozen=True)
class CheckoutOut(Model):
    checkout_session_id: str
    url: str
    expires_at: _dt.datetime | None
    offer: str
    credits: Decimal
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class ClockOut(Model):
    """Where the service's clock stands (and, after an advance, what the schedules did)."""

    now: _dt.datetime
    offset_seconds: int
    test_mode: bool
    holds_expired: int | None = None
    wallets_reset: int | None = None
    more_due: bool | None = None


@dataclass(frozen=True)
class CommitOut(Model):
    reservation_id: str
    status: str
    charged: Decimal
    released: Decimal


@dataclass(frozen=True)
class ConsumerOut(Model):
    member_id: str
    credits: Decimal


@dataclass(frozen=True)
class FiatLimitsOut(Model):
    currency: str
    alert_threshold: Decimal | None
    allowed_limit: Decimal | None
    used: Decimal
    remaining: Decimal | None


@dataclass(frozen=True)
class FiatOut(Model):
    currency: str
    presets: list[Decimal]
    minimum: Decimal
    maximum: Decimal
    credits_per_unit: Decimal


@dataclass(frozen=True)
class ForecastOut(Model):
    burn_rate_per_day: Decimal
    runs_out_on: _dt.date | None


@dataclass(frozen=True)
class GrantLineOut(Model):
    grant_id: str
    source: str
    credits: Decimal
    remaining: Decimal
    status: str
    granted_at: _dt.datetime
    expires_at: _dt.datetime | None
    reason: str | None


@dataclass(frozen=True)
class GrantOut(Model):
    grant_id: str
    credits: Decimal
    source: str
    priority: int
    expires_at: _dt.datetime | None


@dataclass(frozen=True)
class GrantsOut(Model):
    items: list[GrantLineOut]
    next_cursor: str | None


@dataclass(frozen=True)
class GroupOut(Model):
    key: str | None
    credits: Decimal


@dataclass(frozen=True)
class LimitsOut(Model):
    wallet_id: str
    period: PeriodOut
    alert_threshold: Decimal | None
    allowed_limit: Decimal | None
    used: Decimal
    held: Decimal
    remaining: Decimal | None
    state: str
    fiat: FiatLimitsOut | None


@dataclass(frozen=True)
class LineOut(Model):
    category: str
    operation: str
    model: str | None
    tier: str | None
    unit: str
    unit_price: Decimal
    quantity: Decimal
    cost: Decimal


@dataclass(frozen=True)
class MemberBudgetOut(Model):
    wallet_id: str
    member_id: str
    period: PeriodOut
    budget: Decimal | None
    used: Decimal
    held: Decimal
    remaining: Decimal | None


@dataclass(frozen=True)
class MemberBudgetsOut(Model):
    items: list[MemberBudgetOut]


@dataclass(frozen=True)
class MeterOut(Model):
    meter: str
    unit: str
    category: str
    credits_per_unit: Decimal | None = None
    credits_per_unit_by_tier: dict[str, Decimal] | None = None


@dataclass(frozen=True)
class ModelTierOut(Model):
    model: str
    tier: str


@dataclass(frozen=True)
class ModelUsageOut(Model):
    model: str
    credits: Decimal


@dataclass(frozen=True)
class OffersOut(Model):
    packs: list[PackOut]
    amounts: FiatOut | None


@dataclass(frozen=True)
class OrgMemberOut(Model):
    wallet_id: str
    member_id: str | None
    credits: Decimal


@dataclass(frozen=True)
class OrgMonthOut(Model):
    month: str
    credits: Decimal


@dataclass(frozen=True)
class OrgUsageOut(Model):
    org_id: str
    from_: str
    to: str
    credits: Decimal
    actions: int
    months: list[OrgMonthOut]
    wallets: list[OrgWalletOut]
    members: list[OrgMemberOut]
    top_consumers: list[ConsumerOut]

    _aliases = {"from_": "from"}


@dataclass(frozen=True)
class OrgWalletOut(Model):
    wallet_id: str
    credits: Decimal
    actions: int


@dataclass(frozen=True)
class PackOut(Model):
    pack: str
    name: str
    credits: Decimal
    price: Decimal
    currency: str


@dataclass(frozen=True)
class PaymentOut(Model):
    payment_id: str
    created_at: _dt.datetime
    status: str
    kind: str | None
    offer: str | None
    amount: Decimal | None
    currency: str | None
    refunded_amount: Decimal
    credits: Decimal | None
    credited: Decimal
    checkout_session_id: str | None
    invoice_id: str | None
    invoice_url: str | None
    receipt_url: str | None


@dataclass(frozen=True)
class PaymentsOut(Model):
    items: list[PaymentOut]
    next_cursor: str | None


@dataclass(frozen=True)
class PeriodOut(Model):
    start: _dt.datetime
    end: _dt.datetime


@dataclass(frozen=True)
class PlanOut(Model):
    plan: str
    allowance: Decimal | None
    rollover_cap: Decimal
    purchased_credits: str
    overage: bool
    welcome_bonus: Decimal


@dataclass(frozen=True)
class PointOut(Model):
    date: str
    credits: Decimal
    actions: int
    returned: int
    groups: list[GroupOut] | None = None


@dataclass(frozen=True)
class PricesOut(Model):
    meters: list[MeterOut]
    models: list[ModelTierOut]
    plans: list[PlanOut]


@dataclass(frozen=True)
class ProblemOut(Model):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None
    available: Decimal | None = None
    requested: Decimal | None = None
    limit: Decimal | None = None
    remaining: Decimal | None = None


@dataclass(frozen=True)
class PromoCodeOut(Model):
    code: str
    credits: Decimal
    expires_at: _dt.datetime | None
    credits_expire_at: _dt.datetime | None
    credits_expire_in_days: int | None
    max_redemptions: int | None
    redeemed: int


@dataclass(frozen=True)
class QuoteOut(Model):
    credits: Decimal


@dataclass(frozen=True)
class ReferralOut(Model):
    wallet_id: str
    referrer_wallet_id: str
    grant: GrantOut
    referrer_grant: GrantOut | None


@dataclass(frozen=True)
class ReleaseOut(Model):
    reservation_id: str
    status: str
    released: Decimal


@dataclass(frozen=True)
class ReservationOut(Model):
    reservation_id: str
    status: str
    credits: Decimal
    expires_at: _dt.datetime


@dataclass(frozen=True)
class SeriesOut(Model):
    wallet_id: str
    granularity: str
    from_: str
    to: str
    group_by: str | None
    total: Decimal
    points: list[PointOut]

    _aliases = {"from_": "from"}


@dataclass(frozen=True)
class SpendingOut(Model):
    alert_threshold: Decimal | None
    allowed_limit: Decimal | None
    remaining: Decimal | None


@dataclass(frozen=True)
class SummaryOut(Model):
    wallet_id: str
    plan: str
    period: PeriodOut
    renews_at: str
    allowance: Decimal
    used: Decimal
    remaining: Decimal
    percent_used: str | None
    held: Decimal
    balance: Decimal
    breakdown: list[CategoryOut]
    forecast: ForecastOut


@dataclass(frozen=True)
class ThresholdOut(Model):
    type: str
    value: Decimal
    crossed: bool


@dataclass(frozen=True)
class TierUsageOut(Model):
    tier: str
    credits: Decimal
    models: list[ModelUsageOut]


@dataclass(frozen=True)
class TokensOut(Model):
    input: Decimal
    output: Decimal
    reasoning: Decimal


@dataclass(frozen=True)
class TransactionOut(Model):
    transaction_id: str
    type: str
    credits: Decimal
    balance_after: Decimal
    at: _dt.datetime
    feature: str | None
    member_id: str | None
    status: str
    refunded: bool | None = None
    source: str | None = None
    reason: str | None = None
    held: Decimal | None = None
    lines: list[LineOut] = field(default_factory=list)
    tokens: TokensOut | None = None
    billing: str | None = None


@dataclass(frozen=True)
class TransactionsOut(Model):
    items: list[TransactionOut]
    next_cursor: str | None


@dataclass(frozen=True)
class TransferOut(Model):
    transfer_id: str
    from_wallet_id: str
    to_wallet_id: str
    credits: Decimal
    grant_id: str


@dataclass(frozen=True)
class VoidOut(Model):
    grant_id: str
    status: str
    voided: Decimal


@dataclass(frozen=True)
class WalletOut(Model):
    wallet_id: str
    plan: str
    pending_plan: str | None
    anchor_day: int
    overage: bool
    period: PeriodOut
    balance: Decimal
    held: Decimal
    available: Decimal
    allowance: Decimal
    used: Decimal
    buckets: list[BucketOut]
    state: str
    limits: SpendingOut
    org_id: str | None = None
    bypass: bool | None = None


@dataclass(frozen=True)
class WebhookOut(Model):
    """The webhook's answer to Stripe (read by nobody but Stripe's delivery log)."""

    received: bool
    handled: bool
    payment_id: str | None = None
    status: str | None = None
