"""The running bot: claims each update once, handles it in a task of its own, and drains them at shutdown.

Updates come from the webhook (:mod:`telegram_bot.webhook`) or the poller
(:mod:`telegram_bot.polling`); both call :meth:`TelegramService.accept`. The
claim is an INSERT on the update's id, so an update Telegram sends again (a
webhook retry, a poll that was not confirmed, another replica) is handled by
whoever inserted it first and skipped by everyone else. Handling runs in a
task, so the webhook answers at once however long an upload takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from arweave_store.store import UploadStore
from kernel.db import run_sync
from kernel.settings import Settings
from telegram_bot.api import BotAPI
from telegram_bot.handlers import Conversation
from telegram_bot.models import TelegramUpdate
from telegram_bot.polling import Poller
from telegram_bot.types import Update

log = logging.getLogger("permachat.telegram")

KEEP_CLAIMS = dt.timedelta(days=7)  # Telegram keeps an unconfirmed update for 24 hours
PRUNE_EVERY = 3600.0  # seconds


class TelegramService:
    def __init__(self, settings: Settings, store: UploadStore, process_id: str = "") -> None:
        self.settings = settings
        self.api = BotAPI(settings.telegram_bot_token, settings.telegram_api_base)
        self.conversation = Conversation(self.api, store, settings)
        self.tasks: set[asyncio.Task[None]] = set()
        self.poller = Poller(self, process_id) if settings.telegram_mode == "polling" else None
        self._pruned_at = 0.0

    async def start(self) -> None:
        if self.poller is not None:
            self.poller.start()

    async def stop(self, grace: float) -> None:
        """Stop polling, give running handlers ``grace`` seconds, then cancel them.

        A cancelled upload loses nothing paid: once accepted it is the store's,
        and the tracker of this or another process finishes or refunds it.
        """
        if self.poller is not None:
            await self.poller.stop()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        await self.api.aclose()

    async def accept(self, update: Update) -> bool:
        """Claim ``update`` and start handling it; False when it was claimed before. Raises if the database is away."""
        bot_id, update_id = self.api.bot_id, update.update_id
        if not await run_sync(lambda: TelegramUpdate.claim(bot_id, update_id)):
            log.info("telegram: update %d was handled already", update_id)
            return False
        await self._prune_now_and_then()
        if update.message is not None:
            task = asyncio.get_running_loop().create_task(self._handle(update), name=f"telegram-{update_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return True

    async def _handle(self, update: Update) -> None:
        assert update.message is not None
        try:
            await self.conversation.handle(update.message)
        except Exception:  # noqa: BLE001 - one update must not take the others down
            log.exception("telegram: update %d failed", update.update_id)

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = time.monotonic()
        try:
            await run_sync(lambda: TelegramUpdate.prune(KEEP_CLAIMS))
        except Exception:  # noqa: BLE001 - old claims only take room
            log.warning("telegram: could not forget old update claims", exc_info=True)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette, settings: Settings, store: UploadStore,
                   process_id: str = "") -> AsyncIterator[TelegramService | None]:
    """The bot on ``app.state.telegram`` while the app runs (None when no token is set).

    Start it inside the upload store's lifespan: its handlers use the store, and
    are drained before the store closes.
    """
    if not settings.telegram_enabled:
        app.state.telegram = None
        yield None
        return
    service = TelegramService(settings, store, process_id)
    app.state.telegram = service
    await service.start()
    try:
        yield service
    finally:
        await service.stop(settings.shutdown_grace_seconds)
