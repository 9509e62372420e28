"""The background follower: every few seconds, one pass of :meth:`UploadStore.follow`.

It runs in every server process (started by the ASGI lifespan); the store's
conditional updates make concurrent followers safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from arweave_store.store import UploadStore

log = logging.getLogger("permachat.arweave")

# A pass between two uploads stops at once; one posting a large file may take a while.
STOP_GRACE = 5.0


class Tracker:
    """Runs :meth:`UploadStore.follow` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, store: UploadStore, interval: float) -> None:
        self.store = store
        self.interval = max(0.05, interval)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._in_pass = False

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._in_pass = True
            try:
                await self.store.follow(self._stopping)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass (database busy, gateway down) must not end the follower
                log.exception("the upload tracker's pass failed; trying again in %.0f s", self.interval)
            finally:
                self._in_pass = False
            if not self._stopping.is_set():
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="arweave-tracker")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Let a pass finish the upload it is on (it gives its lease back), cancelling it after ``grace`` s."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        if self._in_pass:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():  # asleep between passes (nothing to finish), or past its grace
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
