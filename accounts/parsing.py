"""What people type (USD amounts, dates, lists, IP ranges), checked; and dates shown back."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from decimal import Decimal

from accounts.errors import AccountError
from kernel.models import (
    utcnow,
)
from kernel.money import MoneyError, parse_usd


def parse_usd_arg(text: str | Decimal, what: str = "amount") -> Decimal:
    try:
        return parse_usd(text)
    except MoneyError as exc:
        raise AccountError(f"{what}: {exc}") from None


def parse_date(text: str | None, what: str = "expiry") -> dt.datetime | None:
    """A date or date-time typed by a person (ISO 8601), as naive UTC."""
    if text is None or str(text).strip() == "":
        return None
    try:
        value = dt.datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise AccountError(f"{what}: {text!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    elif len(str(text).strip()) == 10:
        value = value.replace(hour=23, minute=59, second=59)  # a bare date lasts the whole day
    if value <= utcnow():
        raise AccountError(f"{what}: {text} is in the past")
    return value


def parse_list(text: str | Iterable[str] | None) -> list[str]:
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    return [i.strip() for i in items if i and i.strip()]


def parse_ip_ranges(text: str | Iterable[str] | None) -> list[str]:
    ranges = []
    for item in parse_list(text):
        try:
            ranges.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise AccountError(f"allowed IPs: {item!r} is not an IP address or CIDR range") from None
    return ranges


def expires_text(value: dt.datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"
