"""Requests per minute per key.

:class:`RateLimiter` counts in this process's memory (a sliding 60-second
window). With several replicas, :class:`RedisRateLimiter` counts in the Redis at
``PERMACHAT_REDIS_URL`` instead, so the limit holds across all of them (a fixed
one-minute window: one round trip per limited request). If Redis stops
answering, it falls back to counting in memory rather than refusing traffic.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import deque
from typing import Any

from gateway.errors import RateLimited

WINDOW = 60.0
log = logging.getLogger("permachat.gateway")


def _refuse(limit: int, wait: int) -> RateLimited:
    return RateLimited(f"Rate limit reached: this key allows {limit} requests per minute. "
                       f"Try again in {wait} s.", retry_after=wait)


class RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[int, deque[float]] = {}

    async def check(self, token_id: int, limit: int) -> None:
        """Count one request for ``token_id``, or raise :class:`RateLimited` with the wait."""
        self.check_now(token_id, limit)

    def check_now(self, token_id: int, limit: int) -> None:
        if limit <= 0:
            return
        now = time.monotonic()
        hits = self._hits.get(token_id)
        if hits is None:
            hits = self._hits[token_id] = deque()
        while hits and hits[0] <= now - WINDOW:
            hits.popleft()
        if len(hits) >= limit:
            raise _refuse(limit, math.ceil(hits[0] + WINDOW - now))
        hits.append(now)

    async def close(self) -> None:
        return None


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, namespace: str) -> None:
        super().__init__()
        import redis.asyncio

        self.client: Any = redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        # Replicas of one deployment share its secret key; other deployments on
        # the same Redis must not share their counters.
        self.prefix = "permachat:rpm:" + hashlib.sha256(namespace.encode()).hexdigest()[:12]
        self._warned = False

    async def check(self, token_id: int, limit: int) -> None:
        if limit <= 0:
            return
        now = time.time()
        minute = int(now // 60)
        key = f"{self.prefix}:{token_id}:{minute}"
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(key).expire(key, 120).execute()
        except Exception as exc:  # Redis down: keep serving, counted per process
            if not self._warned:
                log.warning("rate limits fall back to this process's memory: Redis failed (%s)", exc)
                self._warned = True
            self.check_now(token_id, limit)
            return
        self._warned = False
        if count > limit:
            raise _refuse(limit, max(1, math.ceil((minute + 1) * 60 - now)))

    async def close(self) -> None:
        await self.client.aclose()
