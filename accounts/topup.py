"""The top-up page's text and exchange rate, as the admin sets them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from accounts.audit import audit
from accounts.errors import AccountError
from kernel.models import (
    Option,
)
from kernel.money import MoneyError, parse_usd

TOPUP_TEXT = "topup.text"


CNY_PER_USD = "topup.cny_per_usd"


DEFAULT_CNY_PER_USD = Decimal(8)


@dataclass(frozen=True)
class TopupInfo:
    text: str
    cny_per_usd: Decimal


def topup_info() -> TopupInfo:
    rate = Option.read(CNY_PER_USD)
    return TopupInfo(text=Option.read(TOPUP_TEXT, "") or "",
                     cny_per_usd=Decimal(str(rate)) if rate is not None else DEFAULT_CNY_PER_USD)


def set_topup_info(*, text: str | None = None, cny_per_usd: str | None = None,
                   actor_id: int | None = None) -> TopupInfo:
    detail: dict[str, Any] = {}
    if cny_per_usd is not None and str(cny_per_usd).strip():
        try:
            rate = parse_usd(cny_per_usd)
        except MoneyError:
            raise AccountError(f"exchange rate: {cny_per_usd!r} is not a positive number") from None
        Option.write(CNY_PER_USD, str(rate))
        detail["cny_per_usd"] = str(rate)
    if text is not None:
        Option.write(TOPUP_TEXT, text.strip()[:5000])
        detail["text"] = True
    audit(actor_id, "options.topup", "topup", detail)
    return topup_info()
