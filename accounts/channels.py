"""Upstream channels as the admin and the CLI manage them (the relay's pool is gateway.channels)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from accounts.audit import audit
from accounts.errors import AccountError
from accounts.parsing import parse_list
from kernel.models import (
    Channel,
    utcnow,
)

# Channel types the gateway knows; each is one adaptor file in gateway/adaptors/.
CHANNEL_TYPES = ("openai", "azure", "groq", "deepseek", "anthropic", "gemini", "bedrock",
                 "cloudflare", "replicate")


DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "cloudflare": "https://api.cloudflare.com/client/v4",
    "replicate": "https://api.replicate.com",
}


def parse_mapping(items: Iterable[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items or ():
        alias, sep, target = item.partition("=")
        if not sep or not alias.strip() or not target.strip():
            raise AccountError(f"model mapping {item!r} must look like alias=upstream_model")
        mapping[alias.strip()] = target.strip()
    return mapping


def add_channel(*, type: str, name: str, base_url: str = "", keys: Iterable[str] = (),
                models: str | Iterable[str] | None = None, priority: int = 0, weight: int = 1,
                mapping: dict[str, str] | None = None, settings: dict | None = None) -> Channel:
    type = (type or "").strip().lower()
    if type not in CHANNEL_TYPES:
        raise AccountError(f"unknown channel type {type!r}; choose one of {', '.join(CHANNEL_TYPES)}")
    name = (name or "").strip()
    if not name:
        raise AccountError("the channel needs a name")
    base_url = (base_url or DEFAULT_BASE_URLS.get(type, "")).strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", base_url):
        raise AccountError(f"base URL {base_url or '(empty)'!r} is not an http(s) URL")
    key_list = [k.strip() for k in keys if k and k.strip()]
    if not key_list:
        raise AccountError("the channel needs at least one upstream key")
    model_list = parse_list(models)
    if not model_list:
        raise AccountError("the channel needs at least one model (--models a,b)")
    if weight < 0:
        raise AccountError("weight must be zero or more")
    mapping = mapping or {}
    model_list += [alias for alias in mapping if alias not in model_list]
    return Channel.create(type=type, name=name, base_url=base_url, keys=key_list, models=model_list,
                          model_mapping=mapping, priority=priority, weight=weight,
                          settings=settings or {})


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
