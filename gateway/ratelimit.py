"""Counting hits per key in time windows: the one limiter behind every limit in the deployment.

    the gateway's requests per minute per key          RateLimiter (below), async, on the hot path
    the free tier's messages per minute per visitor/IP  webapp.chat.free_tier
    failed logins and code redemptions, registrations   webapp.account.limits

A :class:`Limiter` counts in this process's memory (sliding windows). With
``PERMACHAT_REDIS_URL`` it counts in Redis instead, so a limit holds across
every worker and replica: a window opens at a key's first hit and lasts its
length (``SET NX EX`` then ``INCR``), and a hit is counted first and checked
after, a refused one taking its counts back, so concurrent requests on several
replicas are never let through beyond the limit. A Redis that stops answering
degrades to this process's memory (one warning) rather than refusing traffic or
locking people out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from kernel.errors import RateLimited

log = logging.getLogger("permachat.gateway")

MAX_KEYS = 100_000  # a memory window forgets idle keys past this many


class MemoryWindows:
    """Sliding windows in this process (thread-safe: Flask's threads and the event loop share them)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def hit(self, keys: Sequence[str], limit: int) -> float | None:
        """Count one hit on every key, or on none if any is at ``limit``: None, or seconds to wait."""
        now = time.monotonic()
        with self._lock:
            waits = []
            windows = []
            for key in keys:
                hits = self._recent(key, now)
                if len(hits) >= limit:
                    waits.append(hits[0] + self.window - now)
                windows.append(hits)
            if waits:
                return max(waits)
            for hits in windows:
                hits.append(now)
            self._forget_idle(now)
        return None

    def add(self, key: str) -> None:
        """Count one hit on ``key`` with no limit (a failure, an account made)."""
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)
            self._forget_idle(now)

    def count(self, key: str) -> tuple[int, float]:
        """Hits of ``key`` in the window, and seconds until the oldest of them stops counting."""
        now = time.monotonic()
        with self._lock:
            hits = self._recent(key, now)
            return len(hits), (hits[0] + self.window - now) if hits else 0.0

    def clear(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()

    def _forget_idle(self, now: float) -> None:
        if len(self._hits) > MAX_KEYS:
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window}


class RedisWindows:
    """The same windows in Redis, shared by every process; a sync client for Flask, an async one for the loop."""

    def __init__(self, url: str, prefix: str, window: float) -> None:
        self.url = url
        self.prefix = prefix
        self.window = window
        self._ttl = max(1, math.ceil(window))
        self._sync: Any = None
        self._async: Any = None

    def _name(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    @property
    def client(self) -> Any:
        if self._sync is None:
            import redis

            self._sync = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return self._sync

    @property
    def aclient(self) -> Any:
        if self._async is None:
            import redis.asyncio

            self._async = redis.asyncio.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return self._async

    def _count_all(self, pipe: Any, names: list[str]) -> None:
        for name in names:
            pipe.set(name, 0, ex=self._ttl, nx=True)  # the window opens at the key's first hit
            pipe.incr(name)
            pipe.pttl(name)

    def _verdict(self, names: list[str], replies: list[Any], limit: int) -> tuple[float | None, list[str]]:
        """(None or the wait, the names whose counts must be taken back)."""
        counts, ttls = replies[1::3], replies[2::3]
        waits = [max(0, ttl or 0) / 1000 for count, ttl in zip(counts, ttls, strict=True) if count > limit]
        return (max(waits), names) if waits else (None, [])

    def hit(self, keys: Sequence[str], limit: int) -> float | None:
        names = [self._name(key) for key in keys]
        pipe = self.client.pipeline(transaction=True)
        self._count_all(pipe, names)
        wait, undo = self._verdict(names, pipe.execute(), limit)
        if undo:
            pipe = self.client.pipeline(transaction=True)
            for name in undo:
                pipe.decr(name)
            pipe.execute()
        return wait

    async def hit_async(self, keys: Sequence[str], limit: int) -> float | None:
        names = [self._name(key) for key in keys]
        async with self.aclient.pipeline(transaction=True) as pipe:
            self._count_all(pipe, names)
            wait, undo = self._verdict(names, await pipe.execute(), limit)
        if undo:
            async with self.aclient.pipeline(transaction=True) as pipe:
                for name in undo:
                    pipe.decr(name)
                await pipe.execute()
        return wait

    def add(self, key: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._name(key), 0, ex=self._ttl, nx=True)
        pipe.incr(self._name(key))
        pipe.execute()

    def count(self, key: str) -> tuple[int, float]:
        pipe = self.client.pipeline()
        pipe.get(self._name(key))
        pipe.pttl(self._name(key))
        count, ttl_ms = pipe.execute()
        return int(count or 0), max(0, ttl_ms or 0) / 1000

    def clear(self, key: str) -> None:
        self.client.delete(self._name(key))

    def reset(self) -> None:
        names = list(self.client.scan_iter(match=self.prefix + ":*", count=1000))
        if names:
            self.client.delete(*names)

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()


class Limiter:
    """Windows of ``window`` seconds named ``name``: in Redis when ``redis_url`` is given, else in memory.

    ``namespace`` (the deployment's secret key) keeps the counters of two
    deployments that share one Redis apart; replicas of one deployment share it.
    """

    def __init__(self, name: str, window: float, *, redis_url: str = "", namespace: str = "") -> None:
        self.name = name
        self.memory = MemoryWindows(window)
        self.shared = RedisWindows(
            redis_url, f"permachat:{name}:" + hashlib.sha256(namespace.encode()).hexdigest()[:12], window,
        ) if redis_url else None
        self._warned = False

    def _redis_failed(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("the %s limit falls back to this process's memory: Redis failed (%s)", self.name, exc)
            self._warned = True

    def hit(self, keys: Sequence[str], limit: int) -> float | None:
        """Count one hit on every key (all or none); None if allowed, else seconds until it would be."""
        if limit <= 0:
            return None
        if self.shared is not None:
            try:
                wait = self.shared.hit(keys, limit)
            except Exception as exc:  # noqa: BLE001 - Redis down: keep serving, counted per process
                self._redis_failed(exc)
            else:
                self._warned = False
                return wait
        return self.memory.hit(keys, limit)

    async def hit_async(self, keys: Sequence[str], limit: int) -> float | None:
        """:meth:`hit` for the event loop: Redis through its async client, memory as it is."""
        if limit <= 0:
            return None
        if self.shared is not None:
            try:
                wait = await self.shared.hit_async(keys, limit)
            except Exception as exc:  # noqa: BLE001 - as in hit()
                self._redis_failed(exc)
            else:
                self._warned = False
                return wait
        return self.memory.hit(keys, limit)

    def add(self, key: str) -> None:
        """Count one hit on ``key`` without a limit (checked later with :meth:`count`)."""
        if self.shared is not None:
            try:
                return self.shared.add(key)
            except Exception as exc:  # noqa: BLE001 - as in hit()
                self._redis_failed(exc)
        self.memory.add(key)

    def count(self, key: str) -> tuple[int, float]:
        """Hits of ``key`` in its window, and seconds until that window ends (in memory: its oldest hit expires)."""
        if self.shared is not None:
            try:
                return self.shared.count(key)
            except Exception as exc:  # noqa: BLE001 - as in hit()
                self._redis_failed(exc)
        return self.memory.count(key)

    def clear(self, key: str) -> None:
        self.memory.clear(key)
        if self.shared is not None:
            try:
                self.shared.clear(key)
            except Exception as exc:  # noqa: BLE001 - nothing shared to forget while it is down
                self._redis_failed(exc)

    def reset(self) -> None:
        """Forget every count (an admin raised a limit; tests start afresh)."""
        self.memory.reset()
        if self.shared is not None:
            try:
                self.shared.reset()
            except Exception as exc:  # noqa: BLE001 - as in clear()
                self._redis_failed(exc)

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.aclose()


class RateLimiter:
    """Requests per minute per key, for the gateway (``Token.rpm_limit``)."""

    WINDOW = 60.0

    def __init__(self, redis_url: str = "", namespace: str = "") -> None:
        self.limiter = Limiter("rpm", self.WINDOW, redis_url=redis_url, namespace=namespace)

    async def check(self, token_id: int, limit: int) -> None:
        """Count one request for ``token_id``, or raise :class:`RateLimited` with the wait."""
        if limit <= 0:
            return
        wait = await self.limiter.hit_async((str(token_id),), limit)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(f"Rate limit reached: this key allows {limit} requests per minute. "
                              f"Try again in {seconds} s.", retry_after=seconds)

    async def close(self) -> None:
        await self.limiter.aclose()
