"""Token counts from an AI provider's response, as Credit Meter usage lines.

Reads OpenAI (Chat Completions and Responses), Anthropic (Messages) and Google (Gemini)
responses, as the providers' SDK objects or as plain dicts. A small mapping of our own rather
than ``genai-prices``' ``extract_usage``: that one needs pydantic and the provider's name, and
prices calls itself, while we need four counts and leave pricing to the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenUsage:
    """``input`` counts every prompt token, cached ones too; ``output`` excludes reasoning."""

    model: str | None
    input: int
    output: int
    cached_input: int = 0
    reasoning: int = 0

    def lines(
        self, *, model: str | None = None, cached_input_meter: str | None = None
    ) -> list[dict[str, Any]]:
        """Usage lines for a commit or charge. Cached input goes to ``input_tokens`` unless a
        meter of its own is named (the default catalog has none)."""
        name = model or self.model
        counts = [("input_tokens", self.input), ("output_tokens", self.output)]
        if cached_input_meter:
            counts = [
                ("input_tokens", self.input - self.cached_input),
                (cached_input_meter, self.cached_input),
                ("output_tokens", self.output),
            ]
        counts.append(("reasoning_tokens", self.reasoning))
        lines = [{"meter": m, "model": name, "quantity": q} for m, q in counts if q > 0]
        # A usage list is never empty: a call that used nothing is recorded at zero.
        return lines or [{"meter": "input_tokens", "model": name, "quantity": 0}]


def _get(obj: Any, *names: str) -> Any:
    """The first of ``names`` that ``obj`` has, as an attribute or a key (None otherwise)."""
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _int(obj: Any, *names: str) -> int:
    value = _get(obj, *names) if obj is not None else None
    return int(value or 0)


def token_usage(response: Any) -> TokenUsage:
    """The token counts of one response (raises ValueError when it has none)."""
    model = _get(response, "model", "modelVersion", "model_version")
    model = str(model) if model is not None else None
    google = _get(response, "usageMetadata", "usage_metadata")
    if google is not None:
        return TokenUsage(
            model=model,
            input=_int(google, "promptTokenCount", "prompt_token_count"),
            output=_int(google, "candidatesTokenCount", "candidates_token_count"),
            cached_input=_int(google, "cachedContentTokenCount", "cached_content_token_count"),
            reasoning=_int(google, "thoughtsTokenCount", "thoughts_token_count"),
        )
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError("the response has no token usage (usage or usageMetadata)")
    if _get(usage, "prompt_tokens") is not None:  # OpenAI Chat Completions
        reasoning = _int(_get(usage, "completion_tokens_details"), "reasoning_tokens")
        return TokenUsage(
            model=model,
            input=_int(usage, "prompt_tokens"),
            output=_int(usage, "completion_tokens") - reasoning,
            cached_input=_int(_get(usage, "prompt_tokens_details"), "cached_tokens"),
            reasoning=reasoning,
        )
    if _get(usage, "input_tokens_details", "output_tokens_details") is not None:  # Responses
        reasoning = _int(_get(usage, "output_tokens_details"), "reasoning_tokens")
        return TokenUsage(
            model=model,
            input=_int(usage, "input_tokens"),
            output=_int(usage, "output_tokens") - reasoning,
            cached_input=_int(_get(usage, "input_tokens_details"), "cached_tokens"),
            reasoning=reasoning,
        )
    # Anthropic: input_tokens leaves out what was read from or written to the cache.
    cache_read = _int(usage, "cache_read_input_tokens")
    cache_write = _int(usage, "cache_creation_input_tokens")
    return TokenUsage(
        model=model,
        input=_int(usage, "input_tokens") + cache_read + cache_write,
        output=_int(usage, "output_tokens"),
        cached_input=cache_read,
    )


def catalog_model(name: str | None, known: Iterable[str]) -> str | None:
    """The catalog's model for a provider's model name: itself, or the longest catalog name it
    starts with (``claude-sonnet-4-20250514`` -> ``claude-sonnet``); else the name unchanged."""
    if name is None:
        return None
    candidates = [k for k in known if name == k or name.startswith(f"{k}-")]
    return max(candidates, key=len) if candidates else name
