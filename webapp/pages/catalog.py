"""The models on offer, as the pricing page shows them: prices in USD and who serves them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from billing.prices import DEFAULT_PRICE_OPTION, Price, default_price
from kernel.models import Channel, ModelPrice, Option
from kernel.money import format_usd


@dataclass(frozen=True)
class PricedModel:
    model: str
    input_per_million: int | None  # units; None: no price set (not on sale)
    output_per_million: int | None
    per_call: int | None
    free: bool
    providers: tuple[str, ...]  # channel types of the enabled channels serving it
    default_price: bool = False  # priced by the admin's default, not a price of its own
    cached_per_million: int | None = None  # what a cached prompt token costs (the input price unless set)
    # Writes to a prompt cache (Anthropic's, also on Bedrock): 5 minutes, one hour. None: not applicable.
    cache_write_per_million: int | None = None
    cache_write_1h_per_million: int | None = None

    def as_json(self) -> dict[str, object]:
        def usd(units: int | None) -> str | None:
            return None if units is None else format_usd(units)

        return {"model": self.model, "input_usd_per_million": usd(self.input_per_million),
                "output_usd_per_million": usd(self.output_per_million), "per_call_usd": usd(self.per_call),
                "cached_usd_per_million": usd(self.cached_per_million),
                "cache_write_usd_per_million": usd(self.cache_write_per_million),
                "cache_write_1h_usd_per_million": usd(self.cache_write_1h_per_million),
                "free": self.free, "providers": list(self.providers), "default_price": self.default_price}


CACHE_WRITERS = {"anthropic", "bedrock"}  # the channel types whose providers bill cache writes


def price_list(is_free: Callable[[str], bool] = lambda model: False) -> list[PricedModel]:
    """Every model an enabled channel serves, by name, with its own price or the admin's default."""
    prices = {p.model: p for p in ModelPrice.select()}
    fallback = default_price(Option.read(DEFAULT_PRICE_OPTION))
    providers: dict[str, set[str]] = {}
    for channel in Channel.select(Channel.type, Channel.models).where(Channel.status == "enabled"):
        for model in channel.models or ():
            providers.setdefault(model, set()).add(channel.type)
    out = []
    for model in sorted(providers):
        price = prices.get(model)
        rates_of = Price.from_row(price) if price is not None else fallback
        writes = rates_of is not None and (bool(CACHE_WRITERS & providers[model]) or (
            price is not None and price.cache_write_per_million is not None))
        rates = ((price.input_per_million, price.output_per_million, price.per_call) if price is not None
                 else (fallback.input_per_million, fallback.output_per_million, fallback.per_call) if fallback
                 else None)
        out.append(PricedModel(
            model=model,
            input_per_million=rates[0] if rates else None,
            output_per_million=rates[1] if rates else None,
            per_call=rates[2] if rates else None,
            free=(rates is not None and not any(rates)) or is_free(model),
            providers=tuple(sorted(providers[model])),
            default_price=price is None and fallback is not None,
            cached_per_million=rates_of.cached_rate if rates_of is not None else None,
            cache_write_per_million=rates_of.cache_write_rate if writes and rates_of is not None else None,
            cache_write_1h_per_million=rates_of.cache_write_1h_rate if writes and rates_of is not None else None,
        ))
    return out
