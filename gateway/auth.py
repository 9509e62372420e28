"""Who is calling: find the API key in a request and check it.

Keys arrive the ways clients send them (``Authorization: Bearer``, ``x-api-key``,
``api-key``, ``x-goog-api-key``, ``?key=``). Only the key's SHA-256 is stored, so
the lookup is by hash; a key row is cached for a few seconds because every
request needs it and balances are enforced later by the atomic reservation.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernel.errors import AuthenticationError, InsufficientQuotaError, PermissionDenied
from kernel.keys import hash_secret
from kernel.models import Token, User, utcnow

KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")
CACHE_SECONDS = 3.0


@dataclass(frozen=True)
class KeyInfo:
    """What the gateway knows about a caller's key, detached from the database row."""

    token_id: int
    token_name: str
    user_id: int
    user_email: str
    user_group: str
    is_admin: bool
    unlimited: bool
    remain_quota: int  # as of the lookup; the reservation is what enforces it
    user_quota: int
    models: tuple[str, ...]  # empty: every model
    allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    rpm_limit: int
    expires_at: dt.datetime | None
    key_status: str
    user_status: str

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def allows_ip(self, ip: str) -> bool:
        if not self.allowed_ips:
            return True
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.allowed_ips)


def extract_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    """The API key a request carries, wherever the client put it, or None."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
        if key:
            return key
    for name in KEY_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return value
    if query is not None:
        value = (query.get("key") or "").strip()
        if value:
            return value
    return None


def client_ip(request: Any) -> str:
    """The client's address of a Starlette request (the socket's, or the trusted proxy's forwarded one).

    The one place every async door reads it: ``webapp.asgi.Deployment.trust_proxies``
    has already rewritten ``scope["client"]`` when a trusted proxy sent the request.
    """
    return request.client.host if request.client else ""


def request_key(request: Any) -> str | None:
    """The key of a Starlette request; the query string is parsed only when no header has one."""
    key = extract_key(request.headers)
    if key is None and request.scope.get("query_string"):
        key = extract_key({}, request.query_params)
    return key


class KeyCache:
    """A short-lived cache of key lookups; :meth:`forget` drops one after a change."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._rows: dict[str, tuple[float, KeyInfo | None]] = {}
        self._digests: dict[str, str] = {}  # key -> its SHA-256, so a busy key is hashed once
        self._lock = threading.Lock()

    def _digest(self, key: str) -> str:
        digest = self._digests.get(key)
        if digest is None:
            if len(self._digests) > 50_000:
                self._digests.clear()
            digest = self._digests[key] = hash_secret(key)
        return digest

    def lookup(self, key: str) -> KeyInfo | None:
        digest = self._digest(key)
        now = time.monotonic()
        with self._lock:
            hit = self._rows.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = load_key(digest)
        with self._lock:
            if len(self._rows) > 50_000:
                self._rows.clear()
            self._rows[digest] = (now + self.ttl, info)
        return info

    def peek(self, key: str) -> tuple[bool, KeyInfo | None]:
        """``(True, info)`` on a fresh cache hit, ``(False, None)`` when a lookup is needed.

        Never touches the database, so the event loop can call it directly and go
        to a worker thread only on a miss.
        """
        hit = self._rows.get(self._digest(key))
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def forget(self, key_hash: str | None = None) -> None:
        with self._lock:
            if key_hash is None:
                self._rows.clear()
            else:
                self._rows.pop(key_hash, None)


def load_key(key_hash: str) -> KeyInfo | None:
    return _key_info(Token.select(Token, User).join(User).where(Token.key_hash == key_hash).first())


def load_key_by_id(token_id: int) -> KeyInfo | None:
    """A key by its row id (keys the server holds for a signed-in user). Blocking."""
    return _key_info(Token.select(Token, User).join(User).where(Token.id == token_id).first())


def _key_info(row: Token | None) -> KeyInfo | None:
    if row is None:
        return None
    user = row.user
    nets = []
    for cidr in row.allowed_ips or ():
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return KeyInfo(
        token_id=row.id, token_name=row.name, user_id=user.id, user_email=user.email, user_group=user.group,
        is_admin=user.is_admin, unlimited=row.unlimited, remain_quota=row.remain_quota, user_quota=user.quota,
        models=tuple(row.models or ()), allowed_ips=tuple(nets), rpm_limit=row.rpm_limit,
        expires_at=row.expires_at, key_status=row.status, user_status=user.status,
    )


def check_key(info: KeyInfo | None, client_ip: str, *, now: dt.datetime | None = None) -> KeyInfo:
    """Refuse a missing, unknown, disabled, expired, exhausted or out-of-range key, saying which."""
    if info is None:
        raise AuthenticationError("Incorrect API key provided. You can find your API key on the /token page.")
    if info.user_status != "active":
        raise PermissionDenied("The account this key belongs to is disabled.", code="account_disabled")
    if info.key_status != "enabled":
        raise PermissionDenied("This API key is disabled.", code="key_disabled")
    if info.expires_at is not None and info.expires_at <= (now or utcnow()):
        raise PermissionDenied(f"This API key expired on {info.expires_at:%Y-%m-%d %H:%M} UTC.", code="key_expired")
    if not info.allows_ip(client_ip):
        raise PermissionDenied(f"This API key may not be used from {client_ip}.", code="ip_not_allowed")
    if not info.unlimited and info.remain_quota <= 0:
        raise InsufficientQuotaError("This API key's quota is used up. Raise its limit on the /token page.")
    if info.user_quota <= 0:
        raise InsufficientQuotaError("Your account balance is empty. Top it up on the /topup page.")
    return info


def authenticate(key: str | None, client_ip: str, cache: KeyCache | None = None) -> KeyInfo:
    """Look a key up (through ``cache`` when given) and check it. Blocking: call from a thread."""
    if not key:
        raise AuthenticationError("You didn't provide an API key. Send it as 'Authorization: Bearer sk-...'.")
    info = cache.lookup(key) if cache is not None else load_key(hash_secret(key))
    return check_key(info, client_ip)
