"""Model prices in USD per million tokens, as the admin sets them (billing.prices reads them)."""

from __future__ import annotations

from decimal import Decimal

from accounts.audit import audit
from accounts.errors import AccountError
from kernel.models import (
    AuditLog,
    ModelPrice,
    utcnow,
)
from kernel.money import MoneyError, parse_usd, usd_to_units


def _optional_rate(value: str | Decimal | None) -> int | None:
    """USD per million tokens, or None (empty: the rate derived from the input price)."""
    if value is None or str(value).strip() == "":
        return None
    return usd_to_units(parse_usd(value, allow_zero=True))


def set_price(model: str, *, input_usd: str | Decimal, output_usd: str | Decimal,
              per_call_usd: str | Decimal | None = None, cached_usd: str | Decimal | None = None,
              cache_write_usd: str | Decimal | None = None, cache_write_1h_usd: str | Decimal | None = None,
              actor_id: int | None = None) -> ModelPrice:
    """Set a model's whole price in USD per million tokens (and optionally per call).

    ``cached_usd`` is what a prompt token read from the provider's cache costs
    (empty: the input price); ``cache_write_usd`` and ``cache_write_1h_usd`` what
    a token written to Anthropic's 5-minute and one-hour caches costs (empty:
    1.25 and 2 times the input price, as Anthropic charges).
    """
    model = (model or "").strip()
    if not model:
        raise AccountError("the price needs a model name")
    try:
        values = {
            "input_per_million": usd_to_units(parse_usd(input_usd, allow_zero=True)),
            "output_per_million": usd_to_units(parse_usd(output_usd, allow_zero=True)),
            "per_call": usd_to_units(parse_usd(per_call_usd, allow_zero=True)) if per_call_usd is not None else 0,
            "cached_input_per_million": _optional_rate(cached_usd),
            "cache_write_per_million": _optional_rate(cache_write_usd),
            "cache_write_1h_per_million": _optional_rate(cache_write_1h_usd),
            "updated_at": utcnow(),
        }
    except MoneyError as exc:
        raise AccountError(f"price of {model}: {exc}") from None
    (ModelPrice.insert(model=model, **values)
     .on_conflict(conflict_target=[ModelPrice.model], update=values).execute())
    AuditLog.create(actor_id=actor_id, action="price.set", target=model, detail=values | {"updated_at": None})
    return ModelPrice.get(ModelPrice.model == model)


def delete_price(model: str, *, actor_id: int | None = None) -> None:
    if ModelPrice.delete().where(ModelPrice.model == model).execute() != 1:
        raise AccountError(f"no price for {model}")
    audit(actor_id, "price.delete", model)
