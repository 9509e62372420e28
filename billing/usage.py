"""Tokens as a charge counts them, whatever the upstream's wire format called them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Tokens as OpenAI counts them. ``cached_tokens`` (cache reads) is part of ``prompt_tokens``.

    So are the cache writes Anthropic (and Claude on Bedrock) bill above the
    input rate: ``cache_write_tokens`` for the 5-minute cache (1.25 times input)
    and ``cache_write_1h_tokens`` for the one-hour cache (twice input).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def covering(self, counted: Usage) -> Usage:
        """This usage, reported by an upstream that was cut off, raised to what was seen generated.

        A stream cut before its final usage only reports what its first event
        said (Anthropic's ``message_start`` says 1 output token): the text that
        reached the client, counted locally, is what was generated.
        """
        return replace(self, prompt_tokens=self.prompt_tokens or counted.prompt_tokens,
                       completion_tokens=max(self.completion_tokens, counted.completion_tokens))

    @classmethod
    def from_openai(cls, data: Mapping[str, Any] | None) -> Usage | None:
        """Read OpenAI's ``usage`` object; None when absent or not an object."""
        if not isinstance(data, Mapping):
            return None
        # The newer shape names them input/output (gpt-4o-transcribe, the Responses API).
        prompt, completion = ("input", "output") if "prompt_tokens" not in data and "input_tokens" in data \
            else ("prompt", "completion")
        details = data.get(f"{prompt}_tokens_details") or {}
        return cls(prompt_tokens=int(data.get(f"{prompt}_tokens") or 0),
                   completion_tokens=int(data.get(f"{completion}_tokens") or 0),
                   cached_tokens=int((details.get("cached_tokens") if isinstance(details, Mapping) else 0) or 0))

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                               "total_tokens": self.total_tokens}
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out
