"""The models on offer, as the pricing page shows them: prices in USD and who serves them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from billing.prices import DEFAULT_PRICE_OPTION, default_price
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

    def as_json(self) -> dict[str, object]:
        def usd(units: int | None) -> str | None:
            return None if units is None else format_usd(units)

        return {"model": self.model, "input_usd_per_million": usd(self.input_per_million),
                "output_usd_per_million": usd(self.output_per_million), "per_call_usd": usd(self.per_call),
                "free": self.free, "providers": list(self.providers), "default_price": self.default_price}


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
        ))
    return out
