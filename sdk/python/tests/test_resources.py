"""The other resources, one call each at least, against the local API."""

from __future__ import annotations

import uuid
from decimal import Decimal

from credit_meter_client import CreditMeter


def test_catalog_and_offers(cm: CreditMeter) -> None:
    prices = cm.prices.get()
    assert "starter" in {p.plan for p in prices.plans}
    assert "gpt-4o" in cm.catalog_models()
    assert cm.topups.offers().packs


def test_grants_adjustments_transfers(cm: CreditMeter, wallet: str) -> None:
    before = cm.wallets.get(wallet).available
    grant = cm.grants.create(wallet, credits=Decimal("10"), source="promo")
    assert cm.grants.void(wallet, grant.grant_id).voided == 10
    cm.grants.create(wallet, credits=Decimal("10"), source="manual")
    cm.grants.adjust(wallet, credits=-2, reason="correction")
    other = f"w-{uuid.uuid4().hex[:12]}"
    cm.wallets.create(other, org_id="acme", plan="free")
    cm.grants.transfer(wallet, to_wallet_id=other, credits=3)
    assert cm.wallets.get(wallet).available == before + 10 - 2 - 3
    assert all(g.remaining >= 0 for g in cm.grants.list(wallet, limit=1))


def test_promo_code_redeemed(cm: CreditMeter, wallet: str) -> None:
    code = f"WELCOME{uuid.uuid4().hex[:6].upper()}"
    cm.promotions.create_code(code, credits=7, max_redemptions=5)
    before = cm.wallets.get(wallet).available
    cm.promotions.redeem(wallet, code=code)
    assert cm.wallets.get(wallet).available == before + 7


def test_limits_alerts_budgets(admin: CreditMeter, wallet: str) -> None:
    limits = admin.limits.set(wallet, alert_threshold=50, allowed_limit=100)
    assert (limits.alert_threshold, limits.allowed_limit) == (50, 100)
    assert admin.limits.set(wallet).allowed_limit is None  # left out: removed
    alerts = admin.alerts.set(wallet, thresholds=[{"type": "consumed_percent", "value": 80}])
    assert [t.value for t in alerts.thresholds] == [80]
    assert admin.alerts.set(wallet, thresholds=None).defaults
    assert admin.budgets.set(wallet, "ana", budget="5").budget == 5
    assert [b.member_id for b in admin.budgets.list(wallet).items] == ["ana"]
    assert admin.budgets.set(wallet, "ana", budget=None).budget is None


def test_usage_reports_and_csv(cm: CreditMeter, wallet: str) -> None:
    cm.charge(wallet, credits=1, feature="search")
    summary = cm.usage.summary(wallet)
    assert summary.used >= 0
    assert cm.usage.series(wallet, granularity="day").points is not None
    page = cm.transactions.export_csv(wallet)
    assert page.text.startswith("at,transaction_id")
