"""What needs no server: token extraction, the generated code's drift, the route coverage."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from credit_meter_client import AsyncCreditMeter, CreditMeter, token_usage
from credit_meter_client._resources_more import OPERATIONS

SDK = Path(__file__).resolve().parents[1]
SPEC = SDK.parents[1] / "docs" / "openapi.yaml"


def test_openai_chat_completion() -> None:
    got = token_usage(
        {
            "model": "o3-2025-04-16",
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 500,
                "prompt_tokens_details": {"cached_tokens": 400},
                "completion_tokens_details": {"reasoning_tokens": 300},
            },
        }
    )
    assert (got.model, got.input, got.output, got.cached_input, got.reasoning) == (
        "o3-2025-04-16", 1000, 200, 400, 300,
    )  # fmt: skip
    assert got.lines(model="o3") == [
        {"meter": "input_tokens", "model": "o3", "quantity": 1000},
        {"meter": "output_tokens", "model": "o3", "quantity": 200},
        {"meter": "reasoning_tokens", "model": "o3", "quantity": 300},
    ]
    split = got.lines(model="o3", cached_input_meter="cached_input_tokens")
    assert split[:2] == [
        {"meter": "input_tokens", "model": "o3", "quantity": 600},
        {"meter": "cached_input_tokens", "model": "o3", "quantity": 400},
    ]


def test_openai_responses_api_object() -> None:
    class Obj:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    response = Obj(
        model="gpt-4o",
        usage=Obj(
            input_tokens=50,
            output_tokens=20,
            input_tokens_details=Obj(cached_tokens=10),
            output_tokens_details=Obj(reasoning_tokens=5),
        ),
    )
    got = token_usage(response)
    assert (got.input, got.output, got.cached_input, got.reasoning) == (50, 15, 10, 5)


def test_anthropic_message() -> None:
    got = token_usage(
        {
            "type": "message",
            "model": "claude-sonnet-4-20250514",
            "usage": {
                "input_tokens": 100,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": 20,
                "output_tokens": 40,
            },
        }
    )
    assert (got.input, got.output, got.cached_input, got.reasoning) == (150, 40, 30, 0)


def test_google_gemini() -> None:
    got = token_usage(
        {
            "modelVersion": "gemini-flash-001",
            "usageMetadata": {
                "promptTokenCount": 70,
                "candidatesTokenCount": 30,
                "cachedContentTokenCount": 10,
                "thoughtsTokenCount": 12,
            },
        }
    )
    assert (got.model, got.input, got.output, got.cached_input, got.reasoning) == (
        "gemini-flash-001", 70, 30, 10, 12,
    )  # fmt: skip


def test_no_usage_is_an_error() -> None:
    with pytest.raises(ValueError, match="no token usage"):
        token_usage({"model": "x"})


def test_catalog_model_names() -> None:
    from credit_meter_client.tokens import catalog_model

    known = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "o3"]
    assert catalog_model("gpt-4o-mini-2024-07-18", known) == "gpt-4o-mini"
    assert catalog_model("gpt-4o-2024-08-06", known) == "gpt-4o"
    assert catalog_model("claude-sonnet-4-20250514", known) == "claude-sonnet"
    assert catalog_model("o3", known) == "o3"
    assert catalog_model("mistral-large", known) == "mistral-large"


def test_every_operation_has_a_method() -> None:
    spec_ops = set(re.findall(r"operationId: (\w+)", SPEC.read_text(encoding="utf-8")))
    assert spec_ops - {"stripeWebhook"} == set(OPERATIONS)
    for client in (CreditMeter, AsyncCreditMeter):
        cm = client("k", base_url="http://127.0.0.1:9")
        for dotted in OPERATIONS.values():
            resource, method = dotted.split(".")
            assert callable(getattr(getattr(cm, resource), method)), (client, dotted)


@pytest.mark.skipif(importlib.util.find_spec("yaml") is None, reason="needs PyYAML")
@pytest.mark.parametrize("tool", ["gen_models.py", "gen_async.py"])
def test_generated_modules_match_their_sources(tool: str) -> None:
    """models.py is docs/openapi.yaml's schemas, _async_resources.py the sync resources."""
    done = subprocess.run(
        [sys.executable, str(SDK / "tools" / tool), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
