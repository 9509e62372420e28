"""Telling every process that keys, channels or prices changed, within a second.

Each process caches key lookups (a few seconds) and channels and prices (reloaded
every few seconds). A change made through one process (an admin disables a key
or edits a channel on one replica) must hold on every replica almost at once, so
whoever changes them calls :func:`announce`, which writes a new random value to
the ``cache_generation`` option; every gateway reads that one row every
:data:`POLL_SECONDS` (:class:`Watcher`) and, when it changed, drops its key
cache and reloads channels and prices.

The database, not Redis, carries it: the change itself is in the database, so
the announcement commits with the same reliability, on SQLite and PostgreSQL
alike, and a replica that lost Redis still learns of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from kernel.db import run_sync
from kernel.models import Option

log = logging.getLogger("permachat.gateway")

GENERATION_KEY = "cache_generation"
POLL_SECONDS = 0.5


def announce() -> None:
    """Record that keys, channels or prices changed (blocking: one small write)."""
    Option.write(GENERATION_KEY, os.urandom(8).hex())


def current() -> str | None:
    return Option.read(GENERATION_KEY)


class Watcher:
    """Polls the generation; calls ``on_change`` when another process (or this one) announced a change."""

    def __init__(self, on_change: Callable[[], Awaitable[None]], *, interval: float = POLL_SECONDS) -> None:
        self.on_change = on_change
        self.interval = interval
        self.seen: str | None = None

    async def prime(self) -> None:
        """Remember the current generation (at start, after loading the caches)."""
        self.seen = await run_sync(current)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                generation = await run_sync(current)
                if generation != self.seen:
                    await self.on_change()
                    self.seen = generation  # only once the caches were renewed: a failure retries next time
            except Exception:  # the database is briefly away: the caches stay, and the next poll retries
                log.exception("could not check whether keys, channels or prices changed")
