"""Long polling (``getUpdates``) for a server Telegram cannot reach.

Telegram allows one poller per bot (a second gets 409), so of all processes
and replicas only the holder of the database lease polls
(:meth:`telegram_bot.models.TelegramLease.take`: free, already ours, or held by
a process that is no longer registered). The others look again every few
seconds and take over when the holder stops or dies. An update is confirmed
(the next ``offset``) only after it was claimed, and the claim makes a
takeover's repeats harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from kernel.db import run_sync
from telegram_bot.errors import Conflict, RetryAfter, TelegramError, Unauthorized
from telegram_bot.models import TelegramLease

if TYPE_CHECKING:
    from telegram_bot.service import TelegramService

log = logging.getLogger("permachat.telegram")

POLL_TIMEOUT = 25  # seconds one getUpdates may wait for an update
ALLOWED_UPDATES = ["message"]


class Poller:
    def __init__(self, service: TelegramService, owner: str) -> None:
        self.service = service
        self.owner = owner  # this serving process's id; "" (no registry): poll without a lease
        self.timeout = POLL_TIMEOUT
        self.idle = 3.0  # seconds between looks at a lease someone else holds, and after a failure
        self.polling = False  # holds the lease and polls
        self.offset: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="telegram-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.owner and self.polling:
            try:
                await run_sync(lambda: TelegramLease.release(self.owner))
            except Exception:  # noqa: BLE001 - it is free anyway once this process is unregistered
                log.warning("telegram: could not give the poller's lease back", exc_info=True)
        self.polling = False

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round (database busy) must not end polling
                log.exception("telegram: polling failed; trying again in %.0f s", self.idle)
                await asyncio.sleep(self.idle)

    async def poll_once(self) -> None:
        if self.owner and not await run_sync(lambda: TelegramLease.take(self.owner)):
            if self.polling:
                log.warning("telegram: another process took over polling")
            self.polling, self.offset = False, None
            await asyncio.sleep(self.idle)
            return
        if not self.polling:
            log.info("telegram: this process polls for updates")
        self.polling = True
        try:
            updates = await self.service.api.get_updates(offset=self.offset, timeout=self.timeout,
                                                         allowed_updates=ALLOWED_UPDATES)
        except RetryAfter as exc:
            await asyncio.sleep(float(exc.retry_after or self.idle))
            return
        except Conflict as exc:
            log.error("telegram: %s (with a webhook set, run `permachat telegram delete-webhook` to poll)", exc)
            await asyncio.sleep(self.idle * 5)
            return
        except Unauthorized as exc:
            log.error("telegram: %s: PERMACHAT_TELEGRAM_BOT_TOKEN is wrong or revoked", exc)
            await asyncio.sleep(60)
            return
        except TelegramError as exc:
            log.warning("telegram: %s", exc)
            await asyncio.sleep(self.idle)
            return
        for update in updates:
            await self.service.accept(update)  # raises if it cannot be claimed: not confirmed, asked again
            self.offset = max(self.offset or 0, update.update_id + 1)
