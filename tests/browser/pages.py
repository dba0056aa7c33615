"""Opening the demo page for a wallet and a token, and reading what the components show."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

COMPONENTS = (
    "cm-credit-bar",
    "cm-usage-breakdown",
    "cm-usage-chart",
    "cm-activity-log",
    "cm-grants",
    "cm-topup",
    "cm-payments",
    "cm-spending-controls",
    "cm-member-budgets",
    "cm-byok",
)
SETTLED = ("ready", "hidden", "forbidden", "expired", "error")


@dataclass
class Opened:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    # "Failed to load resource" lines for answers the page expects (a 404 for a user without a
    # provider key, a 401 for an expired token): Chromium logs every non-2xx fetch.
    expected_statuses: tuple[int, ...] = ()

    def unexpected_errors(self) -> list[str]:
        return [
            e
            for e in self.console_errors
            if not any(f"status of {s} " in e for s in self.expected_statuses)
        ]

    def state(self, name: str) -> str:
        return str(self.page.eval_on_selector(name, "e => e.dataset.state || ''"))

    def figures(self, selector: str) -> list[tuple[str, str, str]]:
        """(data-field, data-value, text) of every figure under ``selector``."""
        return [
            (e.get_attribute("data-field"), e.get_attribute("data-value"), e.inner_text().strip())
            for e in self.page.locator(f"{selector} [data-field]").all()
        ]

    def intl(self, value: str) -> str:
        """``value`` as the components format credits, in the page's locale."""
        return str(
            self.page.evaluate(
                "v => new Intl.NumberFormat(undefined, {maximumFractionDigits: 6}).format(v)",
                value,
            )
        )


@contextmanager
def open_page(
    browser: Any,
    origin: str,
    wallet: str,
    token: str,
    *,
    color_scheme: str = "light",
    locale: str = "en-US",
    expected_statuses: tuple[int, ...] = (404,),
) -> Iterator[Opened]:
    context = browser.new_context(
        color_scheme=color_scheme, locale=locale, viewport={"width": 1000, "height": 900}
    )
    page = context.new_page()
    opened = Opened(page, expected_statuses=expected_statuses)
    page.on("console", lambda m: m.type == "error" and opened.console_errors.append(m.text))
    page.on("pageerror", lambda e: opened.console_errors.append(f"page error: {e}"))
    try:
        page.goto(f"{origin}/ui/#{urlencode({'wallet': wallet, 'token': token})}")
        wait_settled(page)
        yield opened
    finally:
        context.close()


def wait_settled(page: Any, timeout_ms: int = 30000) -> None:
    page.wait_for_function(
        """([names, settled]) => names.every(n => {
             const e = document.querySelector(n);
             return e && settled.includes(e.dataset.state);
           })""",
        arg=[list(COMPONENTS), list(SETTLED)],
        timeout=timeout_ms,
    )


def axe_violations(page: Any, origin: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (shadow roots included)."""
    page.add_script_tag(url=f"{origin}/ui/axe.min.js")
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [v for v in result if v.get("impact") in ("serious", "critical")]
