"""What a request costs, in quota units, from a model's price and its usage.

A model without a :class:`~kernel.models.ModelPrice` row is refused, unless the
admin set an explicit default in the ``default_price`` option: never a silent
multiplier. The option's value is USD per million tokens (and per call)::

    {"input": "0.5", "output": "1.5", "per_call": "0"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.usage import Usage
from kernel.models import ModelPrice
from kernel.money import MoneyError, cost_of_tokens, parse_usd, usd_to_units

DEFAULT_PRICE_OPTION = "default_price"


@dataclass(frozen=True)
class Price:
    """Units per million tokens (input, output, cached input) and per call."""

    input_per_million: int
    output_per_million: int
    per_call: int = 0
    cached_per_million: int | None = None  # None: cached tokens cost as much as input
    is_default: bool = False
    cache_write_per_million: int | None = None  # None: 1.25 times input (Anthropic's 5-minute cache)
    cache_write_1h_per_million: int | None = None  # None: twice input (its one-hour cache)

    @property
    def cached_rate(self) -> int:
        return self.input_per_million if self.cached_per_million is None else self.cached_per_million

    @property
    def cache_write_rate(self) -> int:
        return self.input_per_million * 5 // 4 if self.cache_write_per_million is None else self.cache_write_per_million

    @property
    def cache_write_1h_rate(self) -> int:
        return self.input_per_million * 2 if self.cache_write_1h_per_million is None else self.cache_write_1h_per_million

    def cost(self, usage: Usage, *, calls: int = 1) -> int:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        writes = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        writes_1h = min(usage.cache_write_1h_tokens, usage.prompt_tokens - cached - writes)
        return (self.per_call * calls
                + cost_of_tokens(usage.prompt_tokens - cached - writes - writes_1h, self.input_per_million)
                + cost_of_tokens(cached, self.cached_rate)
                + cost_of_tokens(writes, self.cache_write_rate)
                + cost_of_tokens(writes_1h, self.cache_write_1h_rate)
                + cost_of_tokens(usage.completion_tokens, self.output_per_million))

    @classmethod
    def from_row(cls, row: ModelPrice) -> Price:
        return cls(input_per_million=row.input_per_million, output_per_million=row.output_per_million,
                   per_call=row.per_call, cached_per_million=row.cached_input_per_million,
                   cache_write_per_million=row.cache_write_per_million,
                   cache_write_1h_per_million=row.cache_write_1h_per_million)


def default_price(value: Any) -> Price | None:
    """The admin's default price from the option's value; None when unset or unusable."""
    if not isinstance(value, dict):
        return None
    try:
        return Price(input_per_million=usd_to_units(parse_usd(value.get("input", 0), allow_zero=True)),
                     output_per_million=usd_to_units(parse_usd(value.get("output", 0), allow_zero=True)),
                     per_call=usd_to_units(parse_usd(value.get("per_call", 0), allow_zero=True)),
                     is_default=True)
    except MoneyError:
        return None
