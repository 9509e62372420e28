"""The background follower: every few seconds, one pass of :meth:`UploadStore.follow`.

It runs in every server process (started by the ASGI lifespan); the store's
conditional updates make concurrent followers safe.
"""

from __future__ import annotations

import asyncio
import logging

from arweave_store.store import UploadStore

log = logging.getLogger("permachat.arweave")


class Tracker:
    def __init__(self, store: UploadStore, interval: float) -> None:
        self.store = store
        self.interval = max(0.05, interval)
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.store.follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass (database busy, gateway down) must not end the follower
                log.exception("the upload tracker's pass failed; trying again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="arweave-tracker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
