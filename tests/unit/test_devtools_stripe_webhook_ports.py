"""``make webhook`` (devtools.stripe_webhook) finds the local server where ``make run`` put it:
on ``PORT`` and ``LOCAL_STRIPE_PORT``."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from devtools import stripe_webhook


def test_the_defaults_are_make_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "LOCAL_STRIPE_PORT", "STRIPE_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    assert stripe_webhook.default_url() == "http://127.0.0.1:3000/v1/webhooks/stripe"
    assert stripe_webhook.default_api_base() == "http://127.0.0.1:12111"


def test_the_ports_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "3107")
    monkeypatch.setenv("LOCAL_STRIPE_PORT", "12177")
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    assert stripe_webhook.default_url() == "http://127.0.0.1:3107/v1/webhooks/stripe"
    assert stripe_webhook.default_api_base() == "http://127.0.0.1:12177"
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9/")  # set: it wins
    assert stripe_webhook.default_api_base() == "http://127.0.0.1:9/"


def test_main_posts_where_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "3107")
    monkeypatch.setenv("LOCAL_STRIPE_PORT", "12177")
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    calls: list[Any] = []

    def run(args: argparse.Namespace, api_base: str) -> list[dict[str, Any]]:
        calls.append(api_base)
        return [{"id": "evt_test"}]

    def deliver(events: list[dict[str, Any]], url: str, secret: str) -> bool:
        calls.append(url)
        return True

    monkeypatch.setattr(stripe_webhook, "_refund", run)
    monkeypatch.setattr(stripe_webhook, "_deliver", deliver)
    assert stripe_webhook.main(["refund", "pi_test"]) == 0
    assert calls == ["http://127.0.0.1:12177", "http://127.0.0.1:3107/v1/webhooks/stripe"]
