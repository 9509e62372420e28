"""Failure counters for logins and code redemptions, per client IP and account.

In memory, per process: with several workers or replicas each keeps its own
count, so an attacker gets at most ``limit`` tries per process per window. That
is enough to make guessing passwords or 128-bit codes hopeless; a shared store
would only tighten the constant.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class FailureLimiter:
    """At most ``limit`` failures per key within ``window`` seconds; success clears the key."""

    limit: int
    window: float
    _hits: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> list[float]:
        hits = [t for t in self._hits.get(key, ()) if t > now - self.window]
        if hits:
            self._hits[key] = hits
        else:
            self._hits.pop(key, None)
        return hits

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        now = time.monotonic()
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) < self.limit:
                return 0
            return max(1, int(hits[-self.limit] + self.window - now) + 1)

    def fail(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 100_000:
                self._hits.clear()
            self._recent(key, now)
            self._hits.setdefault(key, []).append(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


login_failures = FailureLimiter(limit=5, window=300)
redeem_failures = FailureLimiter(limit=5, window=600)
