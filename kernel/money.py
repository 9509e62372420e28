"""Quota units and USD.

Quota is an integer: 500,000 units = 1 USD (One-API's unit, so its users feel at
home). Prices are stored in units too (units per million tokens), so every charge
is integer arithmetic; only what a person reads is shown in USD.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

UNITS_PER_USD = 500_000


class MoneyError(ValueError):
    """An amount of money that cannot be used (not a number, negative, too precise)."""


def parse_usd(text: str | int | float | Decimal, *, allow_zero: bool = False) -> Decimal:
    """Parse a USD amount typed by a person ("12.5", "$3") into a Decimal."""
    try:
        value = Decimal(str(text).strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        raise MoneyError(f"{text!r} is not an amount of USD") from None
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not an amount of USD")
    if value < 0 or (value == 0 and not allow_zero):
        raise MoneyError(f"the amount must be {'zero or ' if allow_zero else ''}positive, got {text}")
    if value > Decimal(10) ** 9:
        raise MoneyError(f"{text} USD is more than this service can hold")
    return value


def usd_to_units(usd: Decimal | str | int | float) -> int:
    """USD to quota units, rounded to the nearest unit (1 unit = 0.000002 USD)."""
    value = usd if isinstance(usd, Decimal) else parse_usd(usd, allow_zero=True)
    return int((value * UNITS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def units_to_usd(units: int) -> Decimal:
    return Decimal(units) / UNITS_PER_USD


def format_usd(units: int, *, places: int = 6) -> str:
    """Units as a USD string for people: "$1.25", "$0.000004"; trailing zeros trimmed to cents."""
    value = units_to_usd(units).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{abs(value):,.{places}f}".rstrip("0")
    whole, _, frac = text.partition(".")
    frac = frac.ljust(2, "0")
    return f"{'-' if value < 0 else ''}${whole}.{frac}"


def cost_of_tokens(tokens: int, units_per_million: int) -> int:
    """Units owed for ``tokens`` at a price in units per million tokens, rounded up.

    Rounding up means a long run of tiny requests can never add up to free usage.
    """
    if tokens <= 0 or units_per_million <= 0:
        return 0
    return -(-tokens * units_per_million // 1_000_000)  # exact integer ceiling division
