"""A chat endpoint that meters each model call against the caller's wallet (Flask).

    pip install ./sdk/python flask
    CREDIT_METER_API_KEY=... CREDIT_METER_BASE_URL=http://127.0.0.1:3000 flask --app app run

The model is a stub that answers like OpenAI's Chat Completions API; swap in the real client.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from credit_meter_client import CreditMeter, InsufficientCredits, LimitReached
from flask import Flask, request


def stub_model(prompt: str) -> dict[str, Any]:
    """Stands in for ``openai.chat.completions.create(...)``."""
    words = prompt.split()
    return {
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"message": {"role": "assistant", "content": f"You said {len(words)} words."}}],
        "usage": {"prompt_tokens": 12 + len(words), "completion_tokens": 7},
    }


def create_app(cm: CreditMeter, model: Callable[[str], dict[str, Any]] = stub_model) -> Flask:
    app = Flask(__name__)

    @app.post("/chat")
    def chat() -> Any:
        body = request.get_json(force=True)
        # --- metering: from here ...
        try:
            with cm.hold(
                body["wallet_id"], credits=Decimal("2"), feature="chat", member_id=body.get("user")
            ) as hold:
                reply = model(body["prompt"])
                hold.commit_from_response(reply)
        except InsufficientCredits as e:
            return {"error": "out of credits", "available": str(e.available)}, 402
        except LimitReached as e:
            return {"error": e.code, "remaining": str(e.remaining)}, 403
        # --- ... to here
        return {"reply": reply["choices"][0]["message"]["content"]}

    return app


def app_from_environment() -> Flask:
    return create_app(CreditMeter())  # CREDIT_METER_API_KEY, CREDIT_METER_BASE_URL


if __name__ == "__main__":
    app_from_environment().run()
