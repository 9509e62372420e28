"""Accounts: registration, passwords, logins, roles and status, and balances changed by hand."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from peewee import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from accounts.audit import audit
from accounts.errors import AccountError, EmailUnavailable
from accounts.parsing import parse_usd_arg
from billing import quota
from kernel.db import db
from kernel.keys import hash_secret, new_redemption_code
from kernel.models import (
    AuditLog,
    LoginSession,
    User,
    utcnow,
)
from kernel.money import format_usd, usd_to_units

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


MIN_PASSWORD = 8


# Accounts permachat itself owns (the free tier's) have this role. They are made by a
# migration, and nobody can register their emails, log into them or be given their keys.
SYSTEM_ROLE = "system"


SYSTEM_DOMAIN = "permachat.invalid"  # RFC 2606: no mailbox can ever have it


FREE_TIER_EMAIL = "free-tier@" + SYSTEM_DOMAIN


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


def topup(user: User, usd: str | Decimal, *, actor_id: int | None = None, reason: str = "topup") -> int:
    """Credit ``usd`` to the account; returns the units credited."""
    units = usd_to_units(parse_usd_arg(usd))
    quota.credit_user(user.id, units, kind="topup", note=reason)
    AuditLog.create(actor_id=actor_id, action="user.topup", target=user.email, detail={"units": units})
    return units


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
