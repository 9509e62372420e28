"""API keys ("tokens"): made, limited, disabled and deleted by their owner or the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from accounts.errors import AccountError
from accounts.parsing import parse_date, parse_ip_ranges, parse_list, parse_usd_arg
from accounts.users import SYSTEM_ROLE
from kernel.keys import display_prefix, hash_secret, new_api_key
from kernel.models import (
    Token,
    User,
)
from kernel.money import usd_to_units


@dataclass(frozen=True)
class NewToken:
    token: Token
    key: str  # the only time the plain key exists


def create_token(user: User, *, name: str = "", usd: str | Decimal | None = None, unlimited: bool = False,
                 models: str | Iterable[str] | None = None, expires: str | None = None,
                 allowed_ips: str | Iterable[str] | None = None, rpm_limit: int = 0,
                 is_default: bool = False) -> NewToken:
    if user.role == SYSTEM_ROLE:
        raise AccountError(f"{user.email} is one of permachat's own accounts: it cannot be given keys")
    if usd is not None and unlimited:
        raise AccountError("choose either a USD limit or unlimited, not both")
    remain = usd_to_units(parse_usd_arg(usd, "key quota")) if usd is not None else 0
    if usd is None and not unlimited:
        unlimited = True  # a key without a limit spends from the account's balance
    if rpm_limit < 0:
        raise AccountError("requests per minute must be zero (no limit) or more")
    name = (name or "").strip()[:64] or "default"
    key = new_api_key()
    token = Token.create(user=user, name=name, key_hash=hash_secret(key), key_prefix=display_prefix(key),
                         remain_quota=remain, unlimited=unlimited, models=parse_list(models),
                         expires_at=parse_date(expires), allowed_ips=parse_ip_ranges(allowed_ips),
                         rpm_limit=rpm_limit, is_default=is_default)
    return NewToken(token=token, key=key)


def owned_token(user_id: int, token_id: int) -> Token:
    token = Token.get_or_none((Token.id == token_id) & (Token.user == user_id))
    if token is None:
        raise AccountError("no such key")
    return token


def update_token(token: Token, *, name: str | None = None, usd: str | None = None, unlimited: bool = False,
                 models: str | None = None, expires: str | None = None,
                 allowed_ips: str | None = None) -> Token:
    """Change a key's limits. ``usd`` sets the key's remaining quota; empty ``expires`` clears it."""
    values: dict[Any, Any] = {}
    if name is not None:
        values[Token.name] = name.strip()[:64] or "default"
    if unlimited:
        values[Token.unlimited] = True
    elif usd is not None and str(usd).strip():
        values[Token.unlimited] = False
        values[Token.remain_quota] = usd_to_units(parse_usd_arg(usd, "key quota"))
    if models is not None:
        values[Token.models] = parse_list(models)
    if allowed_ips is not None:
        values[Token.allowed_ips] = parse_ip_ranges(allowed_ips)
    if expires is not None:
        values[Token.expires_at] = parse_date(expires) if expires.strip() else None
    if values:
        Token.update(values).where(Token.id == token.id).execute()
    return Token.get_by_id(token.id)


def set_token_status(token: Token, status: str) -> None:
    if status not in ("enabled", "disabled"):
        raise AccountError("status must be enabled or disabled")
    Token.update(status=status).where(Token.id == token.id).execute()


def delete_token(token: Token) -> None:
    Token.delete().where(Token.id == token.id).execute()
