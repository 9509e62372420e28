"""Cached tokens counted right on every provider, and billed at their own rates.

OpenAI's ``prompt_tokens`` and Gemini's ``promptTokenCount`` include the cached
tokens; Anthropic's ``input_tokens`` (and Bedrock's ``inputTokens``) exclude both
cache reads and cache writes. Reading one like the other is the commonest
billing bug of gateways: each provider's usage gets a test here, and so does
what the same usage costs.
"""

from __future__ import annotations

import pytest

from billing.prices import Price
from billing.usage import Usage
from gateway.adaptors import anthropic, bedrock, gemini

# 100 prompt tokens of which 60 read from the cache and 30 written to it; 20 generated.
ANSWERS = {
    "openai": lambda: Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                                         "prompt_tokens_details": {"cached_tokens": 60}}),
    "anthropic": lambda: anthropic.usage_of({"input_tokens": 10, "cache_read_input_tokens": 60,
                                             "cache_creation_input_tokens": 30, "output_tokens": 20}),
    "bedrock": lambda: bedrock.usage_of({"inputTokens": 10, "cacheReadInputTokens": 60,
                                         "cacheWriteInputTokens": 30, "outputTokens": 20}),
    "gemini": lambda: gemini.usage_of({"promptTokenCount": 100, "cachedContentTokenCount": 60,
                                       "candidatesTokenCount": 15, "thoughtsTokenCount": 5}),
}
WRITES = {"openai": 0, "anthropic": 30, "bedrock": 30, "gemini": 0}  # OpenAI and Gemini bill no cache writes


@pytest.mark.parametrize("provider", sorted(ANSWERS))
def test_every_provider_counts_the_whole_prompt_and_its_cached_part(provider):
    usage = ANSWERS[provider]()
    assert usage.prompt_tokens == 100  # reads and writes included, whichever way the provider reports them
    assert usage.cached_tokens == 60
    assert usage.cache_write_tokens == WRITES[provider]
    assert usage.completion_tokens == 20  # Gemini's thinking tokens are output


def test_anthropics_one_hour_writes_are_told_apart():
    usage = anthropic.usage_of({"input_tokens": 10, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 30,
                                "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
                                "output_tokens": 20})
    assert (usage.prompt_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (100, 10, 20)


@pytest.mark.parametrize("provider", sorted(ANSWERS))
def test_the_same_usage_costs_the_same_everywhere_but_for_cache_writes(provider):
    # 1 USD (500,000 units) per million input, 0.1 USD cached, 2 USD output: per token 0.5, 0.05 and 1 unit.
    price = Price(input_per_million=500_000, output_per_million=1_000_000, cached_per_million=50_000)
    usage = ANSWERS[provider]()
    writes = WRITES[provider]
    plain = 100 - 60 - writes
    # Cache writes cost 1.25 times the input rate (Anthropic's 5-minute cache).
    expected = plain * 0.5 + 60 * 0.05 + writes * 0.625 + 20 * 1.0
    assert price.cost(usage) == pytest.approx(expected, abs=1)
