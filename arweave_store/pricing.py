"""What an upload costs: the network's price in winston, converted with the admin's rate.

The rate (USD per AR) and the minimum fee (USD) are ``Option`` rows an admin sets
(``permachat arweave rates``); the defaults below apply until then. A quote rounds
up to the next quota unit so no upload is ever free by rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from kernel.models import Option
from kernel.money import UNITS_PER_USD, format_usd, parse_usd, usd_to_units

USD_PER_AR_KEY = "arweave_usd_per_ar"
MIN_FEE_KEY = "arweave_min_fee_usd"
DEFAULT_USD_PER_AR = "25"
DEFAULT_MIN_FEE_USD = "0.001"
WINSTON_PER_AR = 10**12


@dataclass(frozen=True)
class Rates:
    usd_per_ar: Decimal
    min_fee_usd: Decimal


@dataclass(frozen=True)
class Quote:
    size: int
    winston: int
    units: int
    rates: Rates

    @property
    def usd(self) -> str:
        return format_usd(self.units)

    def as_json(self) -> dict[str, object]:
        return {"bytes": self.size, "winston": str(self.winston),
                "ar": str(Decimal(self.winston) / WINSTON_PER_AR), "cost_usd": self.usd,
                "cost_quota": self.units, "usd_per_ar": str(self.rates.usd_per_ar),
                "min_fee_usd": str(self.rates.min_fee_usd)}


def read_rates() -> Rates:
    """The admin's rates (blocking: reads two ``Option`` rows)."""
    return Rates(usd_per_ar=Decimal(str(Option.read(USD_PER_AR_KEY, DEFAULT_USD_PER_AR))),
                 min_fee_usd=Decimal(str(Option.read(MIN_FEE_KEY, DEFAULT_MIN_FEE_USD))))


def set_rates(*, usd_per_ar: str | None = None, min_fee_usd: str | None = None) -> Rates:
    """Validate and store new rates; raises ``kernel.money.MoneyError`` with a readable message."""
    if usd_per_ar is not None:
        Option.write(USD_PER_AR_KEY, str(parse_usd(usd_per_ar)))
    if min_fee_usd is not None:
        Option.write(MIN_FEE_KEY, str(parse_usd(min_fee_usd, allow_zero=True)))
    return read_rates()


def units_for(winston: int, rates: Rates) -> int:
    usd = Decimal(winston) * rates.usd_per_ar / WINSTON_PER_AR
    units = int((usd * UNITS_PER_USD).to_integral_value(rounding=ROUND_CEILING))
    return max(units, usd_to_units(rates.min_fee_usd), 1)


def quote(size: int, winston: int, rates: Rates) -> Quote:
    return Quote(size=size, winston=winston, units=units_for(winston, rates), rates=rates)
