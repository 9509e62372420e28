"""A small typed client of the Bot API (``POST {base}/bot{token}/{method}``), over httpx.

Only the methods the bot uses. Every answer is ``{"ok": true, "result": ...}``
or ``{"ok": false, "error_code": N, "description": "..."}``; the second, and
any failure to get an answer at all, leave as one of :mod:`telegram_bot.errors`.

Files are downloaded from ``{base}/file/bot{token}/{file_path}``, streamed.
A self-hosted Bot API server started with ``--local`` answers ``getFile`` with
an absolute path on its own disk instead (and lifts the 20 MB limit): such a
file is read from that path, so run the bot on the same machine (or share the
directory at the same path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from telegram_bot.errors import NetworkError, NotFound, TelegramError, api_error
from telegram_bot.types import File, SentMessage, Update, User, WebhookInfo

DEFAULT_BASE = "https://api.telegram.org"
CHUNK = 256 * 1024


class BotAPI:
    def __init__(self, token: str, base_url: str = DEFAULT_BASE, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0), trust_env=False,
                                       transport=transport)

    @property
    def bot_id(self) -> int:
        """The bot's own user id: the token's first part."""
        return int(self._token.split(":", 1)[0])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """``method`` with ``params`` (JSON body); its ``result``, or a :class:`TelegramError`."""
        url = f"{self.base_url}/bot{self._token}/{method}"
        try:
            response = await self._http.post(url, json={k: v for k, v in (params or {}).items() if v is not None},
                                             timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:  # the message of httpx's errors carries no URL, so no token
            raise NetworkError(f"{method}: the Bot API could not be reached ({type(exc).__name__}: {exc})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            raise NetworkError(f"{method}: the Bot API answered HTTP {response.status_code} without its JSON")
        if body["ok"] is True:
            return body.get("result")
        code = body.get("error_code")
        parameters = body.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        raise api_error(code if isinstance(code, int) else response.status_code,
                        f"{method}: {body.get('description') or 'no description'}", retry_after)

    async def _parsed(self, parse: Any, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        result = await self.call(method, params, **kw)
        try:
            return parse(result)
        except (ValueError, TypeError, KeyError) as exc:
            raise NetworkError(f"{method}: unexpected answer ({exc})") from None

    async def get_me(self) -> User:
        return await self._parsed(User.parse, "getMe")

    async def get_updates(self, *, offset: int | None, timeout: int, allowed_updates: list[str]) -> list[Update]:
        """Updates after ``offset`` (which confirms every earlier one), waiting up to ``timeout`` s for one."""
        result = await self.call("getUpdates", {"offset": offset, "timeout": timeout, "allowed_updates": allowed_updates},
                                 timeout=timeout + self.timeout)
        if not isinstance(result, list):
            raise NetworkError("getUpdates: unexpected answer (not a list)")
        updates = []
        for item in result:
            try:
                updates.append(Update.parse(item))
            except ValueError:  # not an update: nothing to handle, and nothing to confirm it by
                continue
        return updates

    async def get_file(self, file_id: str) -> File:
        return await self._parsed(File.parse, "getFile", {"file_id": file_id})

    async def download(self, file_path: str) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk (an async generator: close it, e.g. with ``contextlib.aclosing``)."""
        if file_path.startswith("/"):  # a --local Bot API server: the file is on this disk
            try:
                async with await anyio.open_file(file_path, "rb") as fh:
                    while chunk := await fh.read(CHUNK):
                        yield chunk
            except OSError as exc:
                raise NetworkError(f"the file the Bot API server named cannot be read: {exc.strerror}") from None
            return
        url = f"{self.base_url}/file/bot{self._token}/{quote(file_path)}"
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code == 404:
                    raise NotFound("the file is no longer on the Bot API server", error_code=404)
                if response.status_code != 200:
                    raise NetworkError(f"downloading the file: the Bot API answered HTTP {response.status_code}")
                async for chunk in response.aiter_bytes(CHUNK):
                    yield chunk
        except httpx.HTTPError as exc:
            raise NetworkError(f"downloading the file failed ({type(exc).__name__}: {exc})") from None

    async def send_message(self, chat_id: int, text: str, *, reply_to: int | None = None) -> SentMessage:
        """``text`` is Telegram's HTML: escape everything that came from a person."""
        params: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": "HTML",
                                  "link_preview_options": {"is_disabled": True}}
        if reply_to is not None:
            params["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
        return await self._parsed(SentMessage.parse, "sendMessage", params)

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> None:
        await self.call("editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": text,
                                            "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}})

    async def delete_message(self, chat_id: int, message_id: int) -> None:
        await self.call("deleteMessage", {"chat_id": chat_id, "message_id": message_id})

    async def set_webhook(self, url: str, *, secret_token: str, allowed_updates: list[str]) -> None:
        await self.call("setWebhook", {"url": url, "secret_token": secret_token, "allowed_updates": allowed_updates})

    async def delete_webhook(self) -> None:
        await self.call("deleteWebhook")

    async def get_webhook_info(self) -> WebhookInfo:
        return await self._parsed(WebhookInfo.parse, "getWebhookInfo")


__all__ = ["BotAPI", "TelegramError"]
