"""What the account console and the admin change: codes, balances, keys, channels, options.

Every function validates its input and raises :class:`gateway.accounts.AccountError`
with a message fit to show a person. Money moves only through :mod:`gateway.quota`;
every admin change writes an :class:`AuditLog` row (``actor_id`` is the admin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway import quota
from gateway.accounts import (
    CHANNEL_TYPES,
    SYSTEM_ROLE,
    AccountError,
    parse_date,
    parse_ip_ranges,
    parse_list,
    parse_usd_arg,
)
from gateway.db import db
from gateway.keys import hash_secret
from gateway.models import (
    AuditLog,
    Channel,
    ModelPrice,
    Option,
    RedemptionCode,
    Token,
    User,
    utcnow,
)
from gateway.money import MoneyError, format_usd, parse_usd, usd_to_units

TOPUP_TEXT = "topup.text"
CNY_PER_USD = "topup.cny_per_usd"
DEFAULT_CNY_PER_USD = Decimal(8)


def audit(actor_id: int | None, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
    AuditLog.create(actor_id=actor_id, action=action, target=str(target)[:128], detail=detail or {})


# --- redemption -----------------------------------------------------------------------------

class RedeemError(AccountError):
    """A code that cannot be redeemed; ``reason`` is unknown | redeemed | expired | disabled."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def redeem_code(user_id: int, code: str) -> int:
    """Redeem ``code`` for the account; returns the units credited.

    One conditional UPDATE claims the code; only the request whose UPDATE changed
    a row credits the account, in the same transaction, so concurrent requests for
    one code credit it once.
    """
    code = (code or "").strip().lower()
    if not code:
        raise RedeemError("enter a redemption code", "unknown")
    digest = hash_secret(code)
    now = utcnow()
    with db.atomic():
        claimed = (RedemptionCode.update(status="redeemed", redeemed_by=user_id, redeemed_at=now)
                   .where((RedemptionCode.code_hash == digest) & (RedemptionCode.status == "unused")
                          & (RedemptionCode.expires_at.is_null() | (RedemptionCode.expires_at > now)))
                   .execute())
        if claimed == 1:
            row = RedemptionCode.get(RedemptionCode.code_hash == digest)
            quota.credit_user(user_id, row.quota, kind="topup", note=f"code {row.code_prefix}")
            return row.quota
    row = RedemptionCode.get_or_none(RedemptionCode.code_hash == digest)
    if row is None:
        raise RedeemError("this code does not exist; check for typos", "unknown")
    if row.status == "redeemed":
        raise RedeemError("this code has already been redeemed", "redeemed")
    if row.status == "disabled":
        raise RedeemError("this code has been disabled", "disabled")
    raise RedeemError(f"this code expired on {row.expires_at:%Y-%m-%d}", "expired")


def disable_codes(code_ids: Iterable[int] = (), *, batch: str | None = None,
                  actor_id: int | None = None) -> int:
    """Disable unused codes by id or by batch name; returns how many changed."""
    ids = [int(i) for i in code_ids]
    if not ids and not batch:
        raise AccountError("choose codes or a batch to disable")
    cond = RedemptionCode.status == "unused"
    cond &= (RedemptionCode.id.in_(ids)) if ids else (RedemptionCode.name == batch)
    with db.atomic():
        changed = RedemptionCode.update(status="disabled").where(cond).execute()
        audit(actor_id, "codes.disable", batch or ",".join(map(str, ids))[:128], {"count": changed})
    return changed


# --- accounts -------------------------------------------------------------------------------

def adjust_balance(user: User, usd: str | Decimal, *, reason: str = "", actor_id: int | None = None) -> int:
    """Add (positive) or take (negative) USD from an account; returns the signed units."""
    text = str(usd).strip()
    negative = text.startswith("-")
    amount = parse_usd_arg(text.lstrip("-"), "adjustment")
    units = usd_to_units(amount)
    if units == 0:
        raise AccountError("adjustment: the amount is below one unit (0.000002 USD)")
    note = (reason or "").strip()[:200] or "admin adjustment"
    with db.atomic():
        if negative:
            try:
                quota.debit_user(user.id, units, kind="adjust", note=note)
            except quota.InsufficientQuota:
                current = User.get_by_id(user.id).quota
                raise AccountError(f"the balance is {format_usd(current)}; cannot take {format_usd(units)}") from None
        else:
            quota.credit_user(user.id, units, kind="adjust", note=note)
        audit(actor_id, "user.adjust", user.email, {"units": -units if negative else units, "reason": note})
    return -units if negative else units


def set_user_status(user: User, status: str, *, actor_id: int | None = None) -> None:
    if status not in ("active", "disabled"):
        raise AccountError("status must be active or disabled")
    if status == "disabled" and user.id == actor_id:
        raise AccountError("you cannot disable your own account")
    User.update(status=status).where(User.id == user.id).execute()
    audit(actor_id, "user.status", user.email, {"status": status})


def set_user_role(user: User, role: str, *, actor_id: int | None = None) -> None:
    if role not in ("user", "admin"):
        raise AccountError("role must be user or admin")
    if user.role == SYSTEM_ROLE:  # its role is what keeps it from being registered, logged into or keyed
        raise AccountError(f"{user.email} is one of permachat's own accounts: its role cannot change")
    if role == "user" and user.id == actor_id:
        raise AccountError("you cannot remove your own admin role")
    User.update(role=role).where(User.id == user.id).execute()
    audit(actor_id, "user.role", user.email, {"role": role})


def search_users(query: str = "", *, limit: int = 100, offset: int = 0) -> list[User]:
    q = User.select().order_by(User.id.desc())
    if query.strip():
        q = q.where(User.email.contains(query.strip().lower()))
    return list(q.limit(limit).offset(offset))


# --- API keys -------------------------------------------------------------------------------

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


# --- channels -------------------------------------------------------------------------------

def update_channel(channel: Channel, *, actor_id: int | None = None, **changes: Any) -> Channel:
    """Change a channel's fields (name, base_url, keys, models, priority, weight, status, mapping)."""
    values: dict[str, Any] = {}
    for field in ("name", "base_url"):
        if changes.get(field) is not None:
            values[field] = str(changes[field]).strip().rstrip("/") if field == "base_url" else str(changes[field]).strip()
    if "name" in values and not values["name"]:
        raise AccountError("the channel needs a name")
    if "base_url" in values and not values["base_url"].startswith(("http://", "https://")):
        raise AccountError(f"base URL {values['base_url'] or '(empty)'!r} is not an http(s) URL")
    if changes.get("type") is not None:
        if changes["type"] not in CHANNEL_TYPES:
            raise AccountError(f"unknown channel type {changes['type']!r}")
        values["type"] = changes["type"]
    if changes.get("keys") is not None:
        keys = [k.strip() for k in changes["keys"] if k and k.strip()]
        if keys:  # an empty key box keeps the stored keys (the form never shows them)
            values["keys"] = keys
    if changes.get("models") is not None:
        models = parse_list(changes["models"])
        if not models:
            raise AccountError("the channel needs at least one model")
        values["models"] = models
    if changes.get("model_mapping") is not None:
        values["model_mapping"] = dict(changes["model_mapping"])
    for field in ("priority", "weight"):
        if changes.get(field) is not None:
            try:
                values[field] = int(changes[field])
            except (TypeError, ValueError):
                raise AccountError(f"{field} must be a whole number") from None
    if values.get("weight", 0) < 0:
        raise AccountError("weight must be zero or more")
    if changes.get("status") is not None:
        if changes["status"] not in ("enabled", "disabled"):
            raise AccountError("status must be enabled or disabled")
        values["status"] = changes["status"]
        if changes["status"] == "enabled":
            values["disabled_reason"] = ""
    if values:
        Channel.update(values).where(Channel.id == channel.id).execute()
        audit(actor_id, "channel.update", channel.name, {k: v for k, v in values.items() if k != "keys"})
    return Channel.get_by_id(channel.id)


def delete_channel(channel: Channel, *, actor_id: int | None = None) -> None:
    Channel.delete().where(Channel.id == channel.id).execute()
    audit(actor_id, "channel.delete", channel.name, {"id": channel.id})


def record_channel_test(channel: Channel, *, latency_ms: int, error: str) -> None:
    Channel.update(last_tested_at=utcnow(), response_time_ms=latency_ms, last_error=error[:2000]
                   ).where(Channel.id == channel.id).execute()


# --- prices and options ---------------------------------------------------------------------

def delete_price(model: str, *, actor_id: int | None = None) -> None:
    if ModelPrice.delete().where(ModelPrice.model == model).execute() != 1:
        raise AccountError(f"no price for {model}")
    audit(actor_id, "price.delete", model)


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


def code_rows(status: str | None = None, *, batch: str | None = None, limit: int = 200) -> list[RedemptionCode]:
    q = RedemptionCode.select().order_by(RedemptionCode.id.desc())
    if status:
        q = q.where(RedemptionCode.status == status)
    if batch:
        q = q.where(RedemptionCode.name == batch)
    return list(q.limit(limit))


def expires_text(value: dt.datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"
