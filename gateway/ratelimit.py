"""Requests per minute per key, in this process's memory (a sliding 60-second window).

With several replicas each process counts its own requests; a shared counter
(Redis) would make the limit global and is not built yet.
"""

from __future__ import annotations

import math
import time
from collections import deque

from gateway.errors import RateLimited

WINDOW = 60.0


class RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[int, deque[float]] = {}

    def check(self, token_id: int, limit: int) -> None:
        """Count one request for ``token_id``, or raise :class:`RateLimited` with the wait."""
        if limit <= 0:
            return
        now = time.monotonic()
        hits = self._hits.get(token_id)
        if hits is None:
            hits = self._hits[token_id] = deque()
        while hits and hits[0] <= now - WINDOW:
            hits.popleft()
        if len(hits) >= limit:
            wait = math.ceil(hits[0] + WINDOW - now)
            raise RateLimited(f"Rate limit reached: this key allows {limit} requests per minute. "
                              f"Try again in {wait} s.", retry_after=wait)
        hits.append(now)
