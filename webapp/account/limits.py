"""Counters for logins and code redemptions (failures) and registrations, per client IP and account.

Without ``PERMACHAT_REDIS_URL`` the counts live in memory, per process: with
several workers or replicas each keeps its own, so an attacker gets at most
``limit`` tries per process per window (still hopeless against a password or a
128-bit code). With it, every process counts in one Redis, so the limit holds
for the whole deployment. A Redis that stops answering degrades to the
in-memory count rather than locking everyone out.
"""

from __future__ import annotations

from gateway.ratelimit import Limiter


class FailureLimiter:
    """At most ``limit`` failures per key within ``window`` seconds; success clears the key."""

    def __init__(self, name: str, limit: int, window: float, redis_url: str = "", namespace: str = "") -> None:
        self.limit = limit
        self.counts = Limiter(name, window, redis_url=redis_url, namespace=namespace)

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        count, expires_in = self.counts.count(key)
        return max(1, int(expires_in) + 1) if count >= self.limit else 0

    def fail(self, key: str) -> None:
        self.counts.add(key)

    def clear(self, key: str) -> None:
        self.counts.clear(key)


class Limits:
    """The console's limiters for one app, counting in memory or in the Redis at ``redis_url``."""

    def __init__(self, redis_url: str = "", registrations_per_hour: int = 0, login_failures_per_hour: int = 0,
                 namespace: str = "") -> None:
        shared = {"redis_url": redis_url, "namespace": namespace}
        self.login = FailureLimiter("login", limit=5, window=300, **shared)
        # Failures per account from every address together, so guessing from many
        # addresses is capped too; None when unlimited. Unknown emails count alike,
        # so the 429 tells nothing about which accounts exist.
        self.login_account = FailureLimiter("login-account", limit=login_failures_per_hour, window=3600,
                                            **shared) if login_failures_per_hour else None
        self.redeem = FailureLimiter("redeem", limit=5, window=600, **shared)
        # Counts accounts created (not failures) per address; None when unlimited.
        self.register = FailureLimiter("register", limit=registrations_per_hour, window=3600,
                                       **shared) if registrations_per_hour else None


def current() -> Limits:
    from flask import current_app

    return current_app.extensions["permachat.console_limits"]
