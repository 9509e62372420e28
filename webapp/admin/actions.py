"""Admin actions shared by the admin pages (form fields) and the ``/api/`` JSON API.

Each takes the submitted values as a mapping (a form or a JSON object), the
acting admin's id, and raises :class:`AccountError` with a message to show.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from accounts import (
    AccountError,
    add_channel,
    adjust_balance,
    audit,
    create_codes,
    delete_channel,
    delete_price,
    disable_codes,
    parse_mapping,
    set_price,
    set_user_role,
    set_user_status,
    update_channel,
)
from billing.prices import DEFAULT_PRICE_OPTION
from kernel.models import AuditLog, Channel, ModelPrice, Option, RedemptionCode, User
from kernel.money import MoneyError, format_usd, parse_usd
from webapp.ids import MAX_ID, parse_id


def _lines(value: Any) -> list[str]:
    """A list from a JSON list or from text with one item per line (or comma-separated)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).replace(",", "\n").splitlines() if v.strip()]


def _int(values: Mapping[str, Any], name: str, default: int) -> int:
    raw = values.get(name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise AccountError(f"{name} must be a whole number, not {raw!r}") from None
    if abs(value) > MAX_ID:  # the database column is 64-bit
        raise AccountError(f"{name} is too large")
    return value


def _mapping(values: Mapping[str, Any]) -> dict[str, str] | None:
    raw = values.get("mapping")
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return parse_mapping(_lines(raw))


def channel_json(c: Channel) -> dict[str, Any]:
    return {"id": c.id, "type": c.type, "name": c.name, "base_url": c.base_url, "models": c.models,
            "model_mapping": c.model_mapping, "priority": c.priority, "weight": c.weight, "status": c.status,
            "keys": len(c.keys or ()), "last_error": c.last_error, "disabled_reason": c.disabled_reason,
            "last_tested_at": c.last_tested_at.isoformat() if c.last_tested_at else None,
            "response_time_ms": c.response_time_ms, "used_usd": format_usd(c.used_quota)}


def channel_create(values: Mapping[str, Any], actor_id: int) -> Channel:
    channel = add_channel(type=str(values.get("type", "")), name=str(values.get("name", "")),
                          base_url=str(values.get("base_url") or ""), keys=_lines(values.get("keys")),
                          models=_lines(values.get("models")), priority=_int(values, "priority", 0),
                          weight=_int(values, "weight", 1), mapping=_mapping(values))
    audit(actor_id, "channel.create", channel.name, {"id": channel.id, "type": channel.type})
    return channel


def channel_save(channel: Channel, values: Mapping[str, Any], actor_id: int) -> Channel:
    keys = values.get("keys")
    return update_channel(
        channel, actor_id=actor_id, name=values.get("name"), base_url=values.get("base_url"),
        type=values.get("type"), keys=_lines(keys) if keys is not None else None,
        models=_lines(values["models"]) if values.get("models") is not None else None,
        priority=values.get("priority"), weight=values.get("weight"), status=values.get("status"),
        model_mapping=_mapping(values))


def channel_remove(channel: Channel, actor_id: int) -> None:
    delete_channel(channel, actor_id=actor_id)


def code_json(c: RedemptionCode) -> dict[str, Any]:
    return {"id": c.id, "prefix": c.code_prefix, "name": c.name, "usd": format_usd(c.quota), "status": c.status,
            "expires_at": c.expires_at.isoformat() if c.expires_at else None,
            "redeemed_by": c.redeemed_by_id, "redeemed_at": c.redeemed_at.isoformat() if c.redeemed_at else None,
            "created_at": c.created_at.isoformat()}


def codes_generate(values: Mapping[str, Any], actor_id: int) -> list[str]:
    usd = str(values.get("usd") or "").strip()
    if not usd:
        raise AccountError("code value: enter an amount of USD")
    return create_codes(usd, count=_int(values, "count", 1), expires=str(values.get("expires") or "") or None,
                        name=str(values.get("name") or "").strip(), actor_id=actor_id)


def codes_csv(codes: list[str], usd: str, name: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "usd", "batch"])
    for code in codes:
        writer.writerow([code, usd, name])
    return out.getvalue()


def codes_disable(values: Mapping[str, Any], actor_id: int) -> int:
    ids = [parse_id(i) for i in _lines(values.get("ids"))]
    if None in ids:
        raise AccountError("ids must be code numbers")
    batch = str(values.get("batch") or "").strip() or None
    return disable_codes([i for i in ids if i is not None], batch=batch, actor_id=actor_id)


def user_json(u: User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "role": u.role, "status": u.status, "balance_usd": format_usd(u.quota),
            "balance_units": u.quota, "used_usd": format_usd(u.used_quota), "requests": u.request_count,
            "created_at": u.created_at.isoformat()}


def user_change(user: User, values: Mapping[str, Any], actor_id: int) -> str:
    """Apply ``values["action"]`` (adjust, disable, enable, make_admin, remove_admin); returns a notice."""
    action = str(values.get("action") or "")
    if action == "adjust":
        units = adjust_balance(user, str(values.get("usd") or ""), reason=str(values.get("reason") or ""),
                               actor_id=actor_id)
        return f"{user.email}: {'+' if units > 0 else ''}{format_usd(units)}"
    if action in ("disable", "enable"):
        set_user_status(user, "disabled" if action == "disable" else "active", actor_id=actor_id)
        return f"{user.email}: {action}d"
    if action in ("make_admin", "remove_admin"):
        set_user_role(user, "admin" if action == "make_admin" else "user", actor_id=actor_id)
        return f"{user.email}: {'admin' if action == 'make_admin' else 'user'}"
    raise AccountError(f"unknown action {action!r}; use adjust, disable, enable, make_admin or remove_admin")


def price_json(p: ModelPrice) -> dict[str, Any]:
    def usd(units: int | None) -> str | None:
        return None if units is None else format_usd(units)

    return {"model": p.model, "input_usd_per_million": format_usd(p.input_per_million),
            "output_usd_per_million": format_usd(p.output_per_million), "per_call_usd": format_usd(p.per_call),
            "cached_usd_per_million": usd(p.cached_input_per_million),
            "cache_write_usd_per_million": usd(p.cache_write_per_million),
            "cache_write_1h_usd_per_million": usd(p.cache_write_1h_per_million),
            "updated_at": p.updated_at.isoformat()}


def price_save(values: Mapping[str, Any], actor_id: int) -> ModelPrice:
    def optional(name: str) -> str | None:
        value = values.get(name)
        return str(value) if value not in (None, "") else None

    return set_price(str(values.get("model") or ""), input_usd=str(values.get("input") or "0"),
                     output_usd=str(values.get("output") or "0"), per_call_usd=optional("per_call"),
                     cached_usd=optional("cached"), cache_write_usd=optional("cache_write"),
                     cache_write_1h_usd=optional("cache_write_1h"), actor_id=actor_id)


def price_remove(model: str, actor_id: int) -> None:
    delete_price(model, actor_id=actor_id)


def default_price_view() -> dict[str, str] | None:
    """The admin's default price (USD per million tokens) for models without their own; None: unset."""
    value = Option.read(DEFAULT_PRICE_OPTION)
    return value if isinstance(value, dict) else None


def default_price_save(values: Mapping[str, Any], actor_id: int) -> dict[str, str] | None:
    """Set the default price from ``input``/``output``/``per_call``, or clear it (``action=clear``)."""
    if values.get("action") == "clear":
        Option.write(DEFAULT_PRICE_OPTION, None)
        audit(actor_id, "price.default", "*", {"cleared": True})
        return None
    price: dict[str, str] = {}
    for field in ("input", "output", "per_call"):
        raw = str(values.get(field) or "0").strip()
        try:
            price[field] = str(parse_usd(raw, allow_zero=True))
        except MoneyError as exc:
            raise AccountError(f"default price, {field.replace('_', ' ')}: {exc}") from None
    Option.write(DEFAULT_PRICE_OPTION, price)
    audit(actor_id, "price.default", "*", price)
    return price


def audit_json(a: AuditLog) -> dict[str, Any]:
    return {"id": a.id, "time": a.created_at.isoformat(), "actor_id": a.actor_id, "action": a.action,
            "target": a.target, "detail": a.detail}


def free_tier_view() -> dict[str, Any] | None:
    """The chat's free-tier settings as the admin form shows them; None when the chat has none."""
    try:
        from webapp.chat import free_tier
    except ImportError:
        return None
    config = free_tier.read_config()
    fields = []
    for key, (name, label, kind) in free_tier.FIELDS.items():
        value = getattr(config, name)
        fields.append({"key": key, "label": label, "kind": kind,
                       "value": ", ".join(value) if isinstance(value, list) else str(value)})
    return {"fields": fields, "remaining_today": free_tier.remaining_today(config)}


def free_tier_save(values: Mapping[str, Any], actor_id: int) -> dict[str, Any] | None:
    """Store the free-tier fields found in ``values`` through the chat's own validation."""
    from webapp.chat import free_tier

    known = {k: values[k] for k in free_tier.FIELDS if k in values}
    if not known:
        raise AccountError(f"send at least one of {', '.join(free_tier.FIELDS)}")
    try:
        free_tier.write_config(known, actor_id=actor_id)
    except free_tier.FreeTierError as exc:
        raise AccountError(str(exc)) from None
    return free_tier_view()
