"""The free tier: which models visitors without a key may use, and the limits that keep it cheap.

The settings are :class:`kernel.models.Option` rows an admin edits (the console
calls :func:`read_config` / :func:`write_config`); the defaults live here only.
Free chats are billed like any other request, to a system account (made by a
migration) whose balance is reset to the daily budget at the first free chat of
each UTC day, so the gateway's atomic reservation is what caps the day's spend.
Only a chat sent does that reset: viewing a page never moves money. The per-visitor rate
limit counts in this process, or, with ``PERMACHAT_REDIS_URL`` set, in Redis, so that every
worker and replica shares it (:class:`gateway.ratelimit.Limiter`; per process again while Redis is down).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from accounts import FREE_TIER_EMAIL, SYSTEM_ROLE, parse_list
from billing import quota
from gateway.ratelimit import Limiter
from kernel.db import db
from kernel.keys import display_prefix, hash_secret, new_api_key
from kernel.models import AuditLog, Option, Token, User, utcnow
from kernel.money import MoneyError, format_usd, parse_usd, usd_to_units

log = logging.getLogger("permachat.chat")

SYSTEM_EMAIL = FREE_TIER_EMAIL
DAY_OPTION = "free_budget_day"


@dataclass(frozen=True)
class FreeTierConfig:
    models: list[str] = field(default_factory=lambda: ["gpt-4o-mini"])
    rpm: int = 5  # requests per minute per visitor (browser session) and per IP address
    max_tokens: int = 1024  # cap on each reply
    max_context: int = 4000  # tokens sent per request (system prompt, history, the new message)
    daily_budget_usd: str = "1.00"  # what the whole free tier may spend per UTC day


DEFAULTS = FreeTierConfig()

# Option key -> (config field, what the admin form shows, kind)
FIELDS: dict[str, tuple[str, str, str]] = {
    "free_models": ("models", "Free models (comma-separated)", "list"),
    "free_rpm": ("rpm", "Requests per minute per visitor", "int"),
    "free_max_tokens": ("max_tokens", "Largest reply (max_tokens)", "int"),
    "free_max_context": ("max_context", "Largest context sent (tokens)", "int"),
    "free_daily_budget_usd": ("daily_budget_usd", "Daily budget of the whole free tier (USD)", "usd"),
}


class FreeTierError(ValueError):
    """An admin's value the free tier cannot use; the message says which and why."""


def read_config() -> FreeTierConfig:
    """The free tier's current settings (defaults for any the admin has not set)."""
    stored = {row.key: row.value for row in Option.select().where(Option.key.in_(list(FIELDS)))}
    values: dict[str, Any] = {}
    for key, (name, _label, _kind) in FIELDS.items():
        if key in stored and stored[key] is not None:
            values[name] = stored[key]
    try:
        return _validated(values)
    except FreeTierError:
        return DEFAULTS  # a row edited by hand into nonsense must not take the page down


def _validated(values: dict[str, Any]) -> FreeTierConfig:
    merged = asdict(DEFAULTS) | values
    models = parse_list(merged["models"])
    out: dict[str, Any] = {"models": models}
    for name, label, kind in FIELDS.values():
        if kind == "int":
            try:
                number = int(str(merged[name]).strip())
            except ValueError:
                raise FreeTierError(f"{label}: {merged[name]!r} is not a whole number") from None
            if number < 0 or number > 10_000_000:
                raise FreeTierError(f"{label}: must be between 0 and 10000000")
            out[name] = number
        elif kind == "usd":
            try:
                out[name] = str(parse_usd(str(merged[name]), allow_zero=True))
            except MoneyError as exc:
                raise FreeTierError(f"{label}: {exc}") from None
    return FreeTierConfig(**out)


def write_config(values: dict[str, Any], *, actor_id: int | None = None) -> FreeTierConfig:
    """Validate and store the admin's values (keyed by Option key or field name); returns the result.

    A new daily budget applies at once: today's remaining balance moves by the difference.
    """
    by_field = {FIELDS[k][0] if k in FIELDS else k: v for k, v in values.items()}
    unknown = set(by_field) - {name for name, _l, _k in FIELDS.values()}
    if unknown:
        raise FreeTierError(f"unknown free tier settings: {', '.join(sorted(unknown))}")
    old = read_config()
    new = _validated(asdict(old) | by_field)
    with db.atomic():
        for key, (name, _label, _kind) in FIELDS.items():
            Option.write(key, getattr(new, name))
        AuditLog.create(actor_id=actor_id, action="free_tier.update", target="free tier", detail=asdict(new))
    difference = usd_to_units(Decimal(new.daily_budget_usd)) - usd_to_units(Decimal(old.daily_budget_usd))
    if difference and Option.read(DAY_OPTION) == _today():
        user = system_user()
        if difference > 0:
            quota.credit_user(user.id, difference, kind="topup", note="free tier: daily budget raised")
        else:
            taken = min(-difference, max(0, User.get_by_id(user.id).quota))
            if taken:
                quota.debit_user(user.id, taken, kind="adjust", note="free tier: daily budget lowered")
    return new


def _today() -> str:
    return utcnow().date().isoformat()


def next_reset() -> dt.datetime:
    """The next 00:00 UTC, when the daily budget starts over (naive UTC)."""
    return dt.datetime.combine(utcnow().date() + dt.timedelta(days=1), dt.time())


def system_user() -> User:
    """The account free chats are billed to (migration 0002 makes it)."""
    user = User.get_or_none((User.email == SYSTEM_EMAIL) & (User.role == SYSTEM_ROLE))
    if user is None:
        raise RuntimeError("the free tier's system account is missing: run `permachat migrate`")
    return user


def system_token_id() -> int:
    """The free tier's key (unlimited: the account's balance, i.e. the daily budget, is the cap)."""
    user = system_user()
    token = Token.select().where(Token.user == user).order_by(Token.id).first()
    if token is None:  # the migration made one; only a hand-edited database lacks it
        key = new_api_key()  # shown to nobody: the chat bills it in-process
        token = Token.create(user=user, name="free tier", key_hash=hash_secret(key), key_prefix=display_prefix(key),
                             unlimited=True)
    return token.id


def refill_for_today(config: FreeTierConfig) -> int:
    """Set the system account's balance to the daily budget once per UTC day; returns the balance."""
    user = system_user()
    today = _today()
    Option.insert(key=DAY_OPTION, value="", updated_at=utcnow()).on_conflict_ignore().execute()
    # The conditional update elects one request (of any worker) to do the day's refill.
    claimed = (Option.update(value=today, updated_at=utcnow())
               .where((Option.key == DAY_OPTION) & (Option.value != today)).execute())
    if claimed:
        budget = usd_to_units(Decimal(config.daily_budget_usd))
        current = User.get_by_id(user.id).quota
        if budget > current:
            quota.credit_user(user.id, budget - current, kind="topup", note="free tier: daily budget")
        elif current > budget:
            quota.debit_user(user.id, current - budget, kind="adjust", note="free tier: daily budget")
    return User.get_by_id(user.id).quota


def remaining_today(config: FreeTierConfig) -> str:
    """Today's unspent free budget in USD, for the admin page (reads only: a page view moves no money).

    Before today's first free chat, the balance still holds yesterday's rest; what
    today will start with is the whole budget.
    """
    if Option.read(DAY_OPTION) != _today():
        return format_usd(usd_to_units(Decimal(config.daily_budget_usd)))
    return format_usd(max(0, User.get_by_id(system_user().id).quota))


limiter = Limiter("free", 60.0)  # one app without Redis (and tests); see current_limiter


def current_limiter() -> Limiter:
    """The Flask app's limiter: shared through Redis when ``PERMACHAT_REDIS_URL`` is set."""
    from flask import current_app

    return current_app.extensions.get("permachat.free_limiter", limiter)
