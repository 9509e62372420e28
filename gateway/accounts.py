"""Account operations shared by the CLI, the console pages and the admin API.

Each function validates its input and raises :class:`AccountError` with a
message fit to show a person; money moves only through :mod:`gateway.quota`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from peewee import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from gateway import quota
from gateway.db import db
from gateway.keys import display_prefix, hash_secret, new_api_key, new_redemption_code
from gateway.models import (
    AuditLog,
    Channel,
    LoginSession,
    ModelPrice,
    RedemptionCode,
    Token,
    User,
    utcnow,
)
from gateway.money import MoneyError, parse_usd, usd_to_units

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8

# Accounts permachat itself owns (the free tier's) have this role. They are made by a
# migration, and nobody can register their emails, log into them or be given their keys.
SYSTEM_ROLE = "system"
SYSTEM_DOMAIN = "permachat.invalid"  # RFC 2606: no mailbox can ever have it
FREE_TIER_EMAIL = "free-tier@" + SYSTEM_DOMAIN

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


class AccountError(ValueError):
    """Input an account operation cannot accept; the message is shown as is."""


class EmailUnavailable(AccountError):
    """The email is an account's already, or the system's: the register page says neither."""


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise AccountError(f"{email or '(empty)'!s} is not an email address")
    return email


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method="scrypt")


def verify_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


_dummy_hash: list[str] = []


def check_login(email: str, password: str) -> User | None:
    """The account ``email`` and ``password`` open, else None, taking as long either way.

    An unknown email, a system account or a malformed address still runs one scrypt
    check (against a hash of nothing anyone knows), so the time taken does not tell
    whether an account exists.
    """
    try:
        user = User.by_email(normalise_email(email))
    except AccountError:
        user = None
    if user is None or user.role == SYSTEM_ROLE:
        if not _dummy_hash:
            _dummy_hash.append(generate_password_hash(new_redemption_code(), method="scrypt"))
        check_password_hash(_dummy_hash[0], password)
        return None
    return user if verify_password(user, password) else None


LOGIN_DAYS = 365  # as long as the remember cookie lasts


def start_login(user: User) -> str:
    """Open a login for ``user``; returns its secret, which the cookies carry (shown to no one)."""
    secret = new_redemption_code()
    LoginSession.delete().where((LoginSession.user == user.id)
                                & (LoginSession.created_at < utcnow() - dt.timedelta(days=LOGIN_DAYS))).execute()
    LoginSession.create(user=user.id, key_hash=hash_secret(secret))
    return secret


def login_user_for(user_id: int, secret: str) -> User | None:
    """The active account whose open login ``secret`` names, else None (logged out, disabled, expired)."""
    row = (LoginSession.select(LoginSession, User).join(User)
           .where((LoginSession.key_hash == hash_secret(secret)) & (LoginSession.user == user_id)).first())
    if row is None or row.user.status != "active" or row.user.role == SYSTEM_ROLE:
        return None
    if row.created_at < utcnow() - dt.timedelta(days=LOGIN_DAYS):
        return None
    return row.user


def end_login(secret: str) -> None:
    """Close one login: its session and remember cookies stop working."""
    LoginSession.delete().where(LoginSession.key_hash == hash_secret(secret)).execute()


def end_all_logins(user_id: int) -> int:
    """Close every login of the account (log out everywhere); returns how many there were."""
    return LoginSession.delete().where(LoginSession.user == user_id).execute()


def create_user(email: str, password: str, *, admin: bool = False) -> User:
    email = normalise_email(email)
    password_hash = hash_password(password)
    if email.endswith("@" + SYSTEM_DOMAIN):
        raise EmailUnavailable(f"{email} is reserved for permachat's own accounts")
    try:
        with db.atomic():
            if User.by_email(email) is not None:
                raise EmailUnavailable(f"a user with the email {email} already exists")
            return User.create(email=email, password_hash=password_hash, role="admin" if admin else "user")
    except IntegrityError:  # the same email registered at the same moment
        raise EmailUnavailable(f"a user with the email {email} already exists") from None


def get_user(email: str) -> User:
    user = User.by_email(normalise_email(email))
    if user is None:
        raise AccountError(f"no user with the email {email.strip().lower()}")
    return user


def parse_usd_arg(text: str | Decimal, what: str = "amount") -> Decimal:
    try:
        return parse_usd(text)
    except MoneyError as exc:
        raise AccountError(f"{what}: {exc}") from None


def topup(user: User, usd: str | Decimal, *, actor_id: int | None = None, reason: str = "topup") -> int:
    """Credit ``usd`` to the account; returns the units credited."""
    units = usd_to_units(parse_usd_arg(usd))
    quota.credit_user(user.id, units, kind="topup", note=reason)
    AuditLog.create(actor_id=actor_id, action="user.topup", target=user.email, detail={"units": units})
    return units


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


def set_price(model: str, *, input_usd: str | Decimal, output_usd: str | Decimal,
              per_call_usd: str | Decimal | None = None, actor_id: int | None = None) -> ModelPrice:
    """Set a model's price in USD per million tokens (and optionally per call)."""
    model = (model or "").strip()
    if not model:
        raise AccountError("the price needs a model name")
    try:
        values = {
            "input_per_million": usd_to_units(parse_usd(input_usd, allow_zero=True)),
            "output_per_million": usd_to_units(parse_usd(output_usd, allow_zero=True)),
            "per_call": usd_to_units(parse_usd(per_call_usd, allow_zero=True)) if per_call_usd is not None else 0,
            "updated_at": utcnow(),
        }
    except MoneyError as exc:
        raise AccountError(f"price of {model}: {exc}") from None
    (ModelPrice.insert(model=model, **values)
     .on_conflict(conflict_target=[ModelPrice.model], update=values).execute())
    AuditLog.create(actor_id=actor_id, action="price.set", target=model, detail=values | {"updated_at": None})
    return ModelPrice.get(ModelPrice.model == model)


def create_codes(usd: str | Decimal, *, count: int = 1, expires: str | None = None, name: str = "",
                 actor_id: int | None = None) -> list[str]:
    """Create ``count`` redemption codes worth ``usd`` each; returns the plain codes (shown once)."""
    units = usd_to_units(parse_usd_arg(usd, "code value"))
    if not 1 <= count <= 10_000:
        raise AccountError("count must be between 1 and 10000")
    expires_at = parse_date(expires)
    codes = [new_redemption_code() for _ in range(count)]
    with db.atomic():
        RedemptionCode.insert_many([
            {"code_hash": hash_secret(c), "code_prefix": c[:8], "name": name[:64], "quota": units,
             "expires_at": expires_at} for c in codes
        ]).execute()
        AuditLog.create(actor_id=actor_id, action="codes.create", target=name,
                        detail={"count": count, "units": units})
    return codes
