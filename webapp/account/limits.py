"""Counters for logins and code redemptions (failures) and registrations, per client IP and account.

Without ``PERMACHAT_REDIS_URL`` the counts live in memory, per process: with
several workers or replicas each keeps its own, so an attacker gets at most
``limit`` tries per process per window (still hopeless against a password or a
128-bit code). With it, every process counts in one Redis, so the limit holds
for the whole deployment. A Redis that stops answering degrades to the
in-memory count rather than locking everyone out.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger("permachat.console")


class FailureStore(Protocol):
    def recent(self, key: str, window: float) -> tuple[int, float]:
        """Failures of ``key`` in the window, and seconds until the oldest one that counts expires."""

    def add(self, key: str, window: float) -> None: ...

    def clear(self, key: str) -> None: ...


class MemoryStore:
    """Sliding windows in this process."""

    def __init__(self) -> None:
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, window: float, now: float) -> list[float]:
        hits = [t for t in self._hits.get(key, ()) if t > now - window]
        if hits:
            self._hits[key] = hits
        else:
            self._hits.pop(key, None)
        return hits

    def recent(self, key: str, window: float) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            hits = self._prune(key, window, now)
        return len(hits), (hits[0] + window - now) if hits else 0.0

    def add(self, key: str, window: float) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 100_000:
                self._hits.clear()
            self._prune(key, window, now)
            self._hits.setdefault(key, []).append(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


class RedisStore:
    """Fixed windows in Redis (``INCR`` + ``EXPIRE``), shared by every process and replica."""

    PREFIX = "permachat:fail:"

    def __init__(self, url: str) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def recent(self, key: str, window: float) -> tuple[int, float]:
        pipe = self.client.pipeline()
        pipe.get(self.PREFIX + key)
        pipe.pttl(self.PREFIX + key)
        count, ttl_ms = pipe.execute()
        return int(count or 0), max(0, ttl_ms or 0) / 1000

    def add(self, key: str, window: float) -> None:
        pipe = self.client.pipeline()
        pipe.set(self.PREFIX + key, 0, ex=max(1, int(window)), nx=True)  # the window opens at the first failure
        pipe.incr(self.PREFIX + key)
        pipe.execute()

    def clear(self, key: str) -> None:
        self.client.delete(self.PREFIX + key)


class FailureLimiter:
    """At most ``limit`` failures per key within ``window`` seconds; success clears the key."""

    def __init__(self, name: str, limit: int, window: float) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self.memory = MemoryStore()
        self.store: FailureStore = self.memory

    def _call(self, method: str, key: str) -> Any:
        full = f"{self.name}:{key}"
        try:
            return getattr(self.store, method)(full, self.window)
        except Exception as exc:  # Redis down: keep counting here rather than fail the request
            if self.store is self.memory:
                raise
            log.warning("rate-limit store unavailable (%s); counting in memory", exc)
            return getattr(self.memory, method)(full, self.window)

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        count, expires_in = self._call("recent", key)
        return max(1, int(expires_in) + 1) if count >= self.limit else 0

    def fail(self, key: str) -> None:
        self._call("add", key)

    def clear(self, key: str) -> None:
        full = f"{self.name}:{key}"
        try:
            self.store.clear(full)
        except Exception as exc:  # noqa: BLE001 - same reasoning as _call
            log.warning("rate-limit store unavailable (%s)", exc)
        self.memory.clear(full)


class Limits:
    """The console's limiters for one app, counting in memory or in the Redis at ``redis_url``."""

    def __init__(self, redis_url: str = "", registrations_per_hour: int = 0, login_failures_per_hour: int = 0) -> None:
        self.login = FailureLimiter("login", limit=5, window=300)
        # Failures per account from every address together, so guessing from many
        # addresses is capped too; None when unlimited. Unknown emails count alike,
        # so the 429 tells nothing about which accounts exist.
        self.login_account = FailureLimiter("login-account", limit=login_failures_per_hour, window=3600) \
            if login_failures_per_hour else None
        self.redeem = FailureLimiter("redeem", limit=5, window=600)
        # Counts accounts created (not failures) per address; None when unlimited.
        self.register = FailureLimiter("register", limit=registrations_per_hour, window=3600) \
            if registrations_per_hour else None
        if redis_url:
            store = RedisStore(redis_url)
            self.login.store = self.redeem.store = store
            for optional in (self.register, self.login_account):
                if optional is not None:
                    optional.store = store


def current() -> Limits:
    from flask import current_app

    return current_app.extensions["permachat.console_limits"]
