"""The conversation: one message in, the bot's replies out.

A key sent in a message is deleted at once and bound by its token id. A file
is checked (bound key, Telegram's download limit, the service's upload limit,
what the key can pay) before a byte is downloaded, then streamed to disk and
handed to :meth:`arweave_store.store.UploadStore.store_file`, the same path as
``POST /arweave/upload``: the same quote, reservation, log row and refunds.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from arweave_store.access import checked, key_for_token
from arweave_store.errors import PaymentRequired, UploadsUnavailable
from arweave_store.models import Upload
from arweave_store.receive import receive_stream
from arweave_store.store import UploadStore
from gateway.auth import KeyCache, KeyInfo
from kernel.db import run_sync
from kernel.errors import BadRequest, BodyTooLarge, GatewayError, PermissionDenied, UpstreamError
from kernel.keys import KEY_PATTERN
from kernel.models import Token
from kernel.money import format_usd
from kernel.settings import Settings
from telegram_bot.api import BotAPI
from telegram_bot.errors import BadRequest as TelegramBadRequest
from telegram_bot.errors import TelegramError
from telegram_bot.messages import Safe, language, link, say, size_text
from telegram_bot.models import TelegramBinding
from telegram_bot.types import Attachment, Message

log = logging.getLogger("permachat.telegram")

PROGRESS_FROM = 1024 * 1024  # files above this get a progress message, edited in place
PROGRESS_STEP = 25  # percent between two edits...
PROGRESS_SECONDS = 1.0  # ...and at least this long (Telegram limits edits per chat)
NAME_LENGTH = 64  # of a file name in a list (keeps /uploads under Telegram's 4096 characters)
REASON_LENGTH = 300
COMMANDS = ("start", "help", "balance", "uploads", "unbind")


@dataclass(frozen=True)
class Chat:
    """Where the replies go, and in which language."""

    chat_id: int
    message_id: int
    lang: str


class Conversation:
    def __init__(self, api: BotAPI, store: UploadStore, settings: Settings) -> None:
        self.api = api
        self.store = store
        self.settings = settings
        self.keys = KeyCache(ttl=0)  # a key being bound is read fresh
        self.download_limit = settings.telegram_download_limit_mb * 1024 * 1024

    # ---- the way in -------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        sender = message.sender
        if sender is None or sender.is_bot:
            return
        chat = Chat(message.chat_id, message.message_id, language(sender.language_code))
        try:
            if KEY_PATTERN.search(message.text) or (message.chat_type == "private" and message.text.lstrip().startswith("sk-")):
                await self._key(message, chat)
            elif message.chat_type != "private":
                if self._command(message.text):
                    await self._reply(chat, say(chat.lang, "private_only"))
            elif message.attachment is not None:
                await self._upload(sender.id, message.attachment, chat)
            else:
                await self._text(sender.id, message.text, chat)
        except TelegramError as exc:  # the Bot API is away or refused a reply: nothing more can be said
            log.warning("telegram: could not answer a message: %s", exc)
        except Exception:
            log.exception("telegram: handling a message failed")
            with contextlib.suppress(TelegramError):
                await self._reply(chat, say(chat.lang, "went_wrong"))

    @staticmethod
    def _command(text: str) -> str | None:
        """``/cmd`` or ``/cmd@botname`` at the start of the text, lower-cased; None for plain text."""
        if not text.startswith("/"):
            return None
        return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""

    async def _text(self, user_id: int, text: str, chat: Chat) -> None:
        command = self._command(text)
        if command in ("start", "help"):
            await self._reply(chat, self._help(chat.lang))
        elif command == "balance":
            await self._balance(user_id, chat)
        elif command == "uploads":
            await self._uploads(user_id, chat)
        elif command == "unbind":
            await self._unbind(user_id, chat)
        elif await run_sync(lambda: TelegramBinding.token_of(user_id)) is None:
            await self._reply(chat, say(chat.lang, "unbound", token_page=self._page("/token", chat.lang)))
        elif command is not None:
            await self._reply(chat, self._help(chat.lang))
        else:
            await self._reply(chat, say(chat.lang, "send_file"))

    # ---- binding ----------------------------------------------------------------------------

    async def _key(self, message: Message, chat: Chat) -> None:
        # First of all: the key must not stay in the chat, whatever happens next.
        try:
            await self.api.delete_message(message.chat_id, message.message_id)
        except TelegramError as exc:
            log.warning("telegram: could not delete a message holding a key: %s", exc)
        if message.chat_type != "private":
            await self._send(chat.chat_id, say(chat.lang, "key_in_group"))
            return
        found = KEY_PATTERN.search(message.text)
        info = await run_sync(lambda: self.keys.lookup(found.group(0))) if found else None
        if info is None:
            await self._send(chat.chat_id, say(chat.lang, "bad_key", token_page=self._page("/token", chat.lang)))
            return
        try:
            info = await run_sync(lambda: checked(info, "", spending=False))
        except PermissionDenied as exc:
            if exc.code != "ip_not_allowed":  # a key limited to some addresses is still the user's key
                await self._send(chat.chat_id, self._refusal(exc, chat.lang))
                return
        assert message.sender is not None
        user_id, token_id = message.sender.id, info.token_id
        await run_sync(lambda: TelegramBinding.bind(user_id, token_id, chat.lang))
        prefix = await run_sync(lambda: Token.select(Token.key_prefix).where(Token.id == token_id).scalar())
        await self._send(chat.chat_id, say(chat.lang, "bound", prefix=prefix))

    async def _bound_key(self, user_id: int, chat: Chat) -> KeyInfo | None:
        """The user's key as it is now, or None after saying why there is none."""
        token_id = await run_sync(lambda: TelegramBinding.token_of(user_id))
        if token_id is None:
            await self._reply(chat, say(chat.lang, "unbound", token_page=self._page("/token", chat.lang)))
            return None
        info = await run_sync(lambda: key_for_token(token_id))
        if info is None:
            await run_sync(lambda: TelegramBinding.unbind(user_id))
            await self._reply(chat, say(chat.lang, "key_gone", token_page=self._page("/token", chat.lang)))
        return info

    async def _unbind(self, user_id: int, chat: Chat) -> None:
        token_id = await run_sync(lambda: TelegramBinding.token_of(user_id))
        if token_id is None or not await run_sync(lambda: TelegramBinding.unbind(user_id)):
            await self._reply(chat, say(chat.lang, "unbind_nothing"))
            return
        prefix = await run_sync(lambda: Token.select(Token.key_prefix).where(Token.id == token_id).scalar())
        await self._reply(chat, say(chat.lang, "unbind_done", prefix=prefix or "sk-..."))

    # ---- balance and uploads ----------------------------------------------------------------

    def _left(self, info: KeyInfo, lang: str) -> tuple[str, str]:
        key_left = say(lang, "no_limit") if info.unlimited else say(lang, "left", usd=format_usd(max(0, info.remain_quota)))
        return key_left, say(lang, "left", usd=format_usd(max(0, info.user_quota)))

    async def _balance(self, user_id: int, chat: Chat) -> None:
        info = await self._bound_key(user_id, chat)
        if info is None:
            return
        token_id = info.token_id
        prefix = await run_sync(lambda: Token.select(Token.key_prefix).where(Token.id == token_id).scalar())
        key_left, account_left = self._left(info, chat.lang)
        await self._reply(chat, say(chat.lang, "balance", prefix=prefix, key_left=Safe(key_left),
                                    account_left=Safe(account_left)))

    async def _uploads(self, user_id: int, chat: Chat) -> None:
        info = await self._bound_key(user_id, chat)
        if info is None:
            return
        account = info.user_id
        rows = await run_sync(lambda: list(Upload.select().where(Upload.user_id == account)
                                           .order_by(Upload.id.desc()).limit(10)))
        if not rows:
            await self._reply(chat, say(chat.lang, "uploads_none"))
            return
        lines = [say(chat.lang, "uploads_head", count=len(rows))]
        for n, row in enumerate(rows, 1):
            described = self.store.describe(row, self._base())
            name = _short(row.file_name or row.tx_id)
            lines.append(say(chat.lang, "upload_line", n=n, name=link(described["url"], name), size=size_text(row.size),
                             cost=described["cost_usd"], status=say(chat.lang, f"status_{row.status}")))
        await self._reply(chat, Safe("\n".join(lines)))

    # ---- uploading --------------------------------------------------------------------------

    async def _upload(self, user_id: int, attachment: Attachment, chat: Chat) -> None:
        info = await self._bound_key(user_id, chat)
        if info is None:
            return
        progress: Progress | None = None
        try:
            try:
                info = await run_sync(lambda: checked(info, "", spending=True))
            except PaymentRequired:
                key_left, account_left = self._left(info, chat.lang)
                await self._reply(chat, say(chat.lang, "empty_balance", key_left=Safe(key_left),
                                            account_left=Safe(account_left), topup_page=self._page("/topup", chat.lang)))
                return
            self.store.require_wallet()
            if await self._refuse_size(attachment.file_size, chat):
                return
            try:  # refused before downloading when the key cannot pay (Telegram said the size)
                affordable = await self.store.affordable_bytes(info, at_least=attachment.file_size)
            except PaymentRequired as exc:
                size = attachment.file_size
                if size is None:  # not even a byte is affordable
                    raise exc from None
                quote = await self.store.quote(size)
                await self._reply(chat, say(chat.lang, "cannot_afford", size=size_text(size), cost=quote.usd,
                                            left=format_usd(_spendable(info)), topup_page=self._page("/topup", chat.lang)))
                return
            try:
                file = await self.api.get_file(attachment.file_id)
            except TelegramBadRequest as exc:
                if "too big" not in exc.description:
                    raise
                await self._reply(chat, say(chat.lang, "too_big_telegram_unknown", limit=_mb(self.download_limit),
                                            uploads_page=self._page("/uploads", chat.lang)))
                return
            size = attachment.file_size or file.file_size
            if attachment.file_size is None and await self._refuse_size(size, chat):
                return
            if size is not None and size > PROGRESS_FROM:
                progress = Progress(self.api, chat, size, await self._reply(chat, say(chat.lang, "downloading", percent=0)))
            async with contextlib.aclosing(self.api.download(file.file_path)) as chunks:
                received = await receive_stream(
                    progress.count(chunks) if progress else chunks, max_bytes=self.settings.arweave_max_bytes,
                    directory=self.store.incoming, content_type=attachment.mime_type,
                    file_name=attachment.file_name, affordable=affordable)
            if progress is not None:
                await progress.show(say(chat.lang, "storing"))
            row = await self.store.store_file(info, received, request_id=uuid.uuid4().hex, client_ip="",
                                              endpoint="telegram")
        except GatewayError as exc:
            await self._answer(chat, progress, self._refusal(exc, chat.lang))
            return
        except TelegramError as exc:
            log.warning("telegram: downloading a file failed: %s", exc)
            await self._answer(chat, progress, say(chat.lang, "download_failed"))
            return
        await self._answer(chat, progress, self._outcome(row, chat.lang))

    async def _refuse_size(self, size: int | None, chat: Chat) -> bool:
        """Say so and return True when a file of ``size`` bytes cannot be taken (before it is downloaded)."""
        if size is None:
            return False
        if size > self.download_limit:
            await self._reply(chat, say(chat.lang, "too_big_telegram", size=size_text(size), limit=_mb(self.download_limit),
                                        uploads_page=self._page("/uploads", chat.lang)))
            return True
        if size > self.settings.arweave_max_bytes:
            await self._reply(chat, say(chat.lang, "too_large", size=size_text(size),
                                        limit=size_text(self.settings.arweave_max_bytes)))
            return True
        return False

    def _outcome(self, row: Upload, lang: str) -> Safe:
        described = self.store.describe(row, self._base())
        values = {"url": link(described["url"]), "name": _short(row.file_name or row.tx_id, 200),
                  "size": size_text(row.size), "cost": described["cost_usd"]}
        if row.status == "failed":
            return say(lang, "failed", reason=_short(row.last_error, REASON_LENGTH))
        return say(lang, "pending" if row.status == "received" else "stored", **values)

    def _refusal(self, exc: GatewayError, lang: str) -> Safe:
        pages = {"token_page": self._page("/token", lang), "topup_page": self._page("/topup", lang)}
        if exc.code in ("key_disabled", "key_expired", "account_disabled", "ip_not_allowed"):
            return say(lang, exc.code, **pages)
        if isinstance(exc, PaymentRequired):
            return say(lang, "payment_refused", **pages)
        if isinstance(exc, UploadsUnavailable):
            return say(lang, "unavailable")
        if isinstance(exc, BodyTooLarge):
            return say(lang, "too_large_streamed", limit=size_text(self.settings.arweave_max_bytes))
        if isinstance(exc, UpstreamError):
            return say(lang, "arweave_down")
        if isinstance(exc, BadRequest) and exc.param == "file":
            return say(lang, "empty_file")
        return say(lang, "refused", reason=_short(exc.message, REASON_LENGTH))

    # ---- sending ----------------------------------------------------------------------------

    async def _reply(self, chat: Chat, text: str) -> int:
        return (await self.api.send_message(chat.chat_id, text, reply_to=chat.message_id)).message_id

    async def _send(self, chat_id: int, text: str) -> None:
        await self.api.send_message(chat_id, text)

    async def _answer(self, chat: Chat, progress: Progress | None, text: str) -> None:
        """The final word on an upload: the progress message becomes it, or it is a reply of its own."""
        if progress is not None and await progress.show(text):
            return
        await self._reply(chat, text)

    def _help(self, lang: str) -> Safe:
        limit = min(self.download_limit, self.settings.arweave_max_bytes)
        return say(lang, "help", token_page=self._page("/token", lang), topup_page=self._page("/topup", lang),
                   limit=_mb(limit))

    def _base(self) -> str:
        return self.settings.public_url or "/"

    def _page(self, path: str, lang: str) -> Safe:
        if self.settings.public_url:
            return link(self.settings.public_url.rstrip("/") + path)
        return Safe(f"<code>{path}</code>" + (" 页面" if lang == "zh" else " page"))


class Progress:
    """A message that follows a download, edited in place at most every 25% and every second."""

    def __init__(self, api: BotAPI, chat: Chat, total: int, message_id: int) -> None:
        self.api = api
        self.chat = chat
        self.total = total
        self.message_id = message_id
        self.shown = 0
        self.shown_at = time.monotonic()

    async def count(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        done = 0
        async for chunk in chunks:
            done += len(chunk)
            percent = min(100, done * 100 // self.total) // PROGRESS_STEP * PROGRESS_STEP
            if PROGRESS_STEP <= percent < 100 and percent > self.shown and \
                    time.monotonic() - self.shown_at >= PROGRESS_SECONDS:
                self.shown = percent
                await self.show(say(self.chat.lang, "downloading", percent=percent))
            yield chunk

    async def show(self, text: str) -> bool:
        """Edit the message to ``text``; False when Telegram would not (then the caller sends it anew)."""
        self.shown_at = time.monotonic()
        try:
            await self.api.edit_message_text(self.chat.chat_id, self.message_id, text)
        except TelegramError as exc:
            log.info("telegram: could not edit the progress message: %s", exc)
            return False
        return True


def _spendable(info: KeyInfo) -> int:
    return max(0, info.user_quota if info.unlimited else min(info.user_quota, info.remain_quota))


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def _short(text: str, length: int = NAME_LENGTH) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"
