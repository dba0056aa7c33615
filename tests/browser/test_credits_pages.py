"""The credits pages in a real browser against the local server: every figure is what the API
answers for the wallet, the chart and the activity log draw what they should, roles see only
their share, a top-up reaches the Stripe stand-in's checkout, an expired token says so, no
console errors and no serious accessibility violations."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, Server
from tests.browser.pages import COMPONENTS, Opened, axe_violations, open_page, wait_settled

ORG = "ui-org"
WALLET = "ui-wallet"
PAGE_SIZE = 5  # the demo page's activity log
SCREENSHOTS = ROOT / "docs" / "ui"


@pytest.fixture(scope="module")
def wallet(server: Server) -> dict[str, Any]:
    """A starter wallet with committed, released and expired holds, priced charges by two
    members, and a paid top-up; the ledger and reports caught up."""
    admin = server.token(ORG, role="admin")
    meter = server.token(ORG, scope="credits:meter")
    server.call("PUT", f"/v1/wallets/{WALLET}", admin, {"plan": "starter"})
    base = f"/v1/wallets/{WALLET}"
    usage = [{"meter": "output_tokens", "quantity": 4000, "model": "gpt-4o"}]
    held = server.call(
        "POST",
        f"{base}/reservations",
        meter,
        {"feature": "chat", "member_id": "ana", "usage": usage},
    )
    server.call(
        "POST", f"{base}/reservations/{held['reservation_id']}/commit", meter, {"credits": "1.2"}
    )
    released = server.call(
        "POST", f"{base}/reservations", meter, {"feature": "image", "credits": "8"}
    )
    server.call("POST", f"{base}/reservations/{released['reservation_id']}/release", meter)
    expiring = server.call(
        "POST", f"{base}/reservations", meter,
        {"feature": "agent", "credits": "3", "expires_in_seconds": 1},
    )  # fmt: skip
    for i in range(8):
        server.call("POST", f"{base}/charges", meter, {
            "feature": "research" if i % 2 else "chat",
            "member_id": "ben" if i % 3 else "ana",
            "usage": [
                {"meter": "input_tokens", "quantity": 12000 + i * 1000, "model": "claude-sonnet"},
                {"meter": "reasoning_tokens", "quantity": 2500, "model": "o3"},
            ],
        })  # fmt: skip
    session = server.call(
        "POST", f"{base}/checkout", admin,
        {"pack": "pack_500", "success_url": "https://example.com/ok",
         "cancel_url": "https://example.com/no"},
    )  # fmt: skip
    server.pay(session["checkout_session_id"])
    # The ledger and the reports follow the table's stream; the sweeper expires the hold.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        items = server.call("GET", f"{base}/transactions?limit=50", admin)["items"]
        statuses = {i["transaction_id"]: i["status"] for i in items}
        payments = server.call("GET", f"{base}/payments", admin)["items"]
        if (
            statuses.get(expiring["reservation_id"]) == "expired"
            and len(items) >= 13
            and any(p["status"] == "paid" for p in payments)
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the ledger did not catch up: {statuses} {payments}")
    return {
        "admin": admin,
        "released": released["reservation_id"],
        "expired": expiring["reservation_id"],
    }


def test_figures_equal_the_api(server: Server, browser: Any, wallet: dict[str, Any]) -> None:
    admin = wallet["admin"]
    base = f"/v1/wallets/{WALLET}"
    api_wallet = server.call("GET", base, admin)
    summary = server.call("GET", f"{base}/usage/summary", admin)
    # A German locale: the figures follow the browser's locale ("1.234,5").
    with open_page(browser, server.origin, WALLET, admin, locale="de-DE") as opened:
        assert all(opened.state(name) == "ready" for name in COMPONENTS), [
            (n, opened.state(n)) for n in COMPONENTS
        ]
        expected = {
            "plan": api_wallet["plan"],
            "used": api_wallet["used"],
            "allowance": api_wallet["allowance"],
            "remaining": summary["remaining"],
            "renews_at": summary["renews_at"],
            "state": api_wallet["state"],
        }
        shown = {f: (v, t) for f, v, t in opened.figures("cm-credit-bar")}
        assert {f: v for f, (v, _) in shown.items()} == expected
        for name in ("used", "allowance", "remaining"):
            assert shown[name][1] == opened.intl(expected[name])
        assert "," in shown["remaining"][1] or Decimal(summary["remaining"]) % 1 == 0

        breakdown = [v for _, v, _ in opened.figures("cm-usage-breakdown")]
        flat = []
        for category in summary["breakdown"]:
            flat.append(category["credits"])
            for tier in category["tiers"]:
                flat.append(tier["credits"])
                flat.extend(m["credits"] for m in tier["models"])
        assert breakdown == flat

        grants = server.call("GET", f"{base}/grants?limit=50", admin)["items"]
        shown_grants = [v for f, v, _ in opened.figures("cm-grants") if f == "remaining"]
        assert shown_grants == [g["remaining"] for g in grants]
        payments = server.call("GET", f"{base}/payments", admin)["items"]
        shown_paid = [v for f, v, _ in opened.figures("cm-payments") if f == "credited"]
        assert shown_paid == [p["credited"] for p in payments] and payments
        assert opened.unexpected_errors() == []


def test_chart_draws_30_days_and_12_months(
    server: Server, browser: Any, wallet: dict[str, Any]
) -> None:
    admin = wallet["admin"]
    base = f"/v1/wallets/{WALLET}/usage"
    with open_page(browser, server.origin, WALLET, admin) as opened:
        page = opened.page
        days = server.call("GET", f"{base}?granularity=day&group_by=feature", admin)
        bars = page.locator("cm-usage-chart g.bar")
        assert bars.count() == 30
        values = [b.get_attribute("data-value") for b in bars.all()]
        assert values == [p["credits"] for p in days["points"]]
        page.select_option("cm-usage-chart select >> nth=0", "month")
        page.wait_for_function(
            "() => document.querySelector('cm-usage-chart').shadowRoot"
            ".querySelectorAll('g.bar').length === 12"
        )
        months = server.call("GET", f"{base}?granularity=month&group_by=feature", admin)
        values = [b.get_attribute("data-value") for b in bars.all()]
        assert values == [p["credits"] for p in months["points"]]
        page.select_option("cm-usage-chart select >> nth=1", "model")
        # Grouped by model, the legend names the models the charges used.
        page.locator("cm-usage-chart .legend li", has_text="claude-sonnet").wait_for()
        legend = page.locator("cm-usage-chart .legend li").all_inner_texts()
        assert "o3" in legend and "chat" not in legend
        assert opened.unexpected_errors() == []


def test_activity_log_pages_and_strikes_returned_rows(
    server: Server, browser: Any, wallet: dict[str, Any]
) -> None:
    admin = wallet["admin"]
    everything = server.call("GET", f"/v1/wallets/{WALLET}/transactions?limit=50", admin)["items"]
    with open_page(browser, server.origin, WALLET, admin) as opened:
        page = opened.page
        seen: list[str] = []
        for number in range(1, 4):
            rows = page.locator("cm-activity-log tbody tr[data-id]")
            expected = everything[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
            assert rows.count() == len(expected) > 0
            ids = [r.get_attribute("data-id") for r in rows.all()]
            assert ids == [i["transaction_id"] for i in expected]
            balances = [v for f, v, _ in opened.figures("cm-activity-log") if f == "balance_after"]
            assert balances == [i["balance_after"] for i in expected]
            for item in expected:
                row = page.locator(f"cm-activity-log tr[data-id='{item['transaction_id']}']")
                struck = row.locator("td.struck >> nth=1").evaluate(
                    "e => getComputedStyle(e).textDecorationLine"
                )
                returned = item["refunded"] or item["status"] in ("released", "expired")
                assert (struck == "line-through") == returned, item
            seen += [str(i) for i in ids]
            if number == 3:
                assert page.get_by_role("button", name="Older").is_disabled()
                break
            page.get_by_role("button", name="Older").click()
            page.wait_for_function(
                "n => document.querySelector('cm-activity-log').shadowRoot"
                ".querySelector('nav span').textContent.trim() === `Page ${n}`",
                arg=number + 1,
            )
        assert {wallet["released"], wallet["expired"]} <= set(seen)
        assert len(seen) == len(everything) == 13

        for number in (2, 1):
            page.get_by_role("button", name="Newer").click()
            page.wait_for_function(
                "n => document.querySelector('cm-activity-log').shadowRoot"
                ".querySelector('nav span').textContent.trim() === `Page ${n}`",
                arg=number,
            )
        charge = next(i for i in everything if i["tokens"])
        row = page.locator(f"cm-activity-log tr[data-id='{charge['transaction_id']}']")
        toggle = row.get_by_role("button")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
        tokens = {f: v for f, v, _ in opened.figures("cm-activity-log .detail")}
        assert tokens["tokens.input"] == charge["tokens"]["input"]
        assert tokens["tokens.reasoning"] == charge["tokens"]["reasoning"]

        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        text = Path(download.value.path()).read_text()
        assert charge["transaction_id"] in text
        assert opened.unexpected_errors() == []


def test_member_sees_only_their_own(server: Server, browser: Any, wallet: dict[str, Any]) -> None:
    member = server.token(ORG, role="member", sub="ana")
    own = server.call("GET", f"/v1/wallets/{WALLET}/transactions?limit=5", member)["items"]
    hidden = (
        "cm-topup",
        "cm-spending-controls",
        "cm-member-budgets",
        "cm-payments",
        "cm-grants",
        "cm-usage-chart",
    )
    with open_page(browser, server.origin, WALLET, member, expected_statuses=(403, 404)) as opened:
        for name in hidden:
            assert opened.state(name) == "hidden", name
            assert not opened.page.locator(name).is_visible()
        # Asked anyway, the API refuses (403): the element renders nothing, no error banner.
        opened.page.evaluate(
            "() => { const g = document.querySelector('cm-grants');"
            " g.visibleTo = () => true; return g.reload(); }"
        )
        opened.page.wait_for_function(
            "() => document.querySelector('cm-grants').dataset.state === 'forbidden'"
        )
        assert opened.page.locator("cm-grants [role=alert]").count() == 0
        assert not opened.page.locator("cm-grants").is_visible()
        assert opened.state("cm-credit-bar") == "ready"
        ids = opened.page.locator("cm-activity-log tbody tr[data-id]").all()
        assert [r.get_attribute("data-id") for r in ids] == [i["transaction_id"] for i in own]
        assert {i["member_id"] for i in own} <= {"ana", None}
        assert opened.page.get_by_text("Member budgets").count() == 0
        assert opened.page.get_by_role("button", name="Buy").count() == 0
        assert opened.unexpected_errors() == []


def test_topup_goes_to_the_checkout_page(
    server: Server, browser: Any, wallet: dict[str, Any]
) -> None:
    with open_page(browser, server.origin, WALLET, wallet["admin"]) as opened:
        page = opened.page
        page.locator("cm-topup button[data-pack='pack_2500']").click()
        page.wait_for_url(f"http://127.0.0.1:{server.stripe_port}/checkout/**")
        assert "/checkout/cs_" in page.url


def test_expired_token_says_so_and_asks_for_a_new_one(
    server: Server, browser: Any, wallet: dict[str, Any]
) -> None:
    expired = server.token(ORG, role="admin", now=time.time() - 7200, ttl_seconds=600)
    with open_page(browser, server.origin, WALLET, expired, expected_statuses=(401, 404)) as opened:
        page = opened.page
        assert opened.state("cm-credit-bar") == "expired"
        message = page.locator("cm-credit-bar [data-field='session-expired']")
        assert "session has expired" in message.inner_text()
        # A tokenRefresh that hands back a valid token: the element tries again and shows data.
        page.evaluate(
            """token => {
                 const bar = document.querySelector('cm-credit-bar');
                 window.refreshes = 0;
                 bar.tokenRefresh = async () => { window.refreshes += 1; return token; };
                 bar.reload();
               }""",
            wallet["admin"],
        )
        page.wait_for_function(
            "() => document.querySelector('cm-credit-bar').dataset.state === 'ready'"
        )
        assert page.evaluate("window.refreshes") == 1
        assert opened.unexpected_errors() == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_accessible_and_screenshots(
    server: Server, browser: Any, wallet: dict[str, Any], scheme: str
) -> None:
    with open_page(browser, server.origin, WALLET, wallet["admin"], color_scheme=scheme) as opened:
        page = opened.page
        background = page.locator("cm-credit-bar").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert (background == "rgb(255, 255, 255)") == (scheme == "light")
        assert axe_violations(page, server.origin) == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"credits-{scheme}.png"), full_page=True)
        assert _no_errors(opened)


def _no_errors(opened: Opened) -> bool:
    wait_settled(opened.page)
    assert opened.unexpected_errors() == []
    return True
