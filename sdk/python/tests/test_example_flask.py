"""examples/flask-chat against the local API: a metered chat, a failing model, no credits."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from credit_meter_client import CreditMeter

pytest.importorskip("flask")
APP = Path(__file__).resolve().parents[3] / "examples" / "flask-chat" / "app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_chat_example", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def wallet_id(cm: CreditMeter) -> str:
    wallet_id = f"flask-chat-{uuid.uuid4().hex[:8]}"
    cm.wallets.create(wallet_id, org_id="acme", plan="starter")
    return wallet_id


def test_a_chat_is_metered_by_its_tokens(cm: CreditMeter, wallet_id: str) -> None:
    client = load_example().create_app(cm).test_client()
    got = client.post("/chat", json={"wallet_id": wallet_id, "user": "ana", "prompt": "hi there"})
    assert got.status_code == 200 and got.json == {"reply": "You said 2 words."}
    wallet = cm.wallets.get(wallet_id)
    assert wallet.held == 0 and wallet.used > 0


def test_a_failing_model_releases_the_hold(cm: CreditMeter, wallet_id: str) -> None:
    def failing(prompt: str) -> dict[str, Any]:
        raise TimeoutError("the provider did not answer")

    app = load_example().create_app(cm, failing)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    got = app.test_client().post("/chat", json={"wallet_id": wallet_id, "prompt": "hi"})
    assert got.status_code == 500
    wallet = cm.wallets.get(wallet_id)
    assert (wallet.held, wallet.used) == (0, 0)


def test_an_empty_wallet_answers_402(cm: CreditMeter, wallet_id: str) -> None:
    cm.charge(wallet_id, credits=cm.wallets.get(wallet_id).available, feature="setup")
    client = load_example().create_app(cm).test_client()
    got = client.post("/chat", json={"wallet_id": wallet_id, "prompt": "hi"})
    assert got.status_code == 402 and got.json == {"error": "out of credits", "available": "0"}
