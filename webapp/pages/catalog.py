"""The models on offer, as the pricing page shows them: prices in USD and who serves them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.models import Channel, ModelPrice
from gateway.money import format_usd


@dataclass(frozen=True)
class PricedModel:
    model: str
    input_per_million: int | None  # units; None: no price set (not on sale)
    output_per_million: int | None
    per_call: int | None
    free: bool
    providers: tuple[str, ...]  # channel types of the enabled channels serving it

    def as_json(self) -> dict[str, object]:
        def usd(units: int | None) -> str | None:
            return None if units is None else format_usd(units)

        return {"model": self.model, "input_usd_per_million": usd(self.input_per_million),
                "output_usd_per_million": usd(self.output_per_million), "per_call_usd": usd(self.per_call),
                "free": self.free, "providers": list(self.providers)}


def price_list(is_free: Callable[[str], bool] = lambda model: False) -> list[PricedModel]:
    """Every model an enabled channel serves or the admin priced, by name."""
    prices = {p.model: p for p in ModelPrice.select()}
    providers: dict[str, set[str]] = {}
    for channel in Channel.select(Channel.type, Channel.models).where(Channel.status == "enabled"):
        for model in channel.models or ():
            providers.setdefault(model, set()).add(channel.type)
    out = []
    for model in sorted(set(prices) | set(providers)):
        price = prices.get(model)
        zero = price is not None and not (price.input_per_million or price.output_per_million or price.per_call)
        out.append(PricedModel(
            model=model,
            input_per_million=price.input_per_million if price else None,
            output_per_million=price.output_per_million if price else None,
            per_call=price.per_call if price else None,
            free=zero or is_free(model),
            providers=tuple(sorted(providers.get(model, ()))),
        ))
    return out
