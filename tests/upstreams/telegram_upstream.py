"""A small Bot API server that behaves like Telegram's, for the bot's tests.

Faithful where the bot (and python-telegram-bot, see tests/telegram_bot/test_fake_api.py) looks:

- ``POST`` (or ``GET``) ``/bot<token>/<method>`` with a JSON, form or multipart body, or a query
  string, answering ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
  "description": "..."}``: 401 ``Unauthorized`` for another token, 404 ``Not Found`` for an
  unknown method, 400 ``Bad Request: ...`` for a bad call (a missing parameter, a message that is
  not there, an edit that changes nothing, HTML that does not parse, a text over 4096 characters);
- ``getFile`` answers a ``file_path`` (or 400 ``file is too big`` over the download limit, 20 MB);
  ``GET /file/bot<token>/<file_path>`` serves the bytes (``download_delay`` seconds between
  64 KiB chunks); ``local_mode`` answers absolute paths on disk instead, as ``--local`` does;
- ``sendMessage``, ``editMessageText`` and ``deleteMessage`` are recorded (``calls``) and kept
  per chat (``chats``), so a test sees what a person would see;
- ``getUpdates`` hands out the queued updates from ``offset`` on, dropping every update below an
  offset once it is given (Telegram's confirmation), waits up to ``timeout`` seconds for one,
  answers 409 while a webhook is set, and ends an earlier poll that is still waiting with 409
  ``terminated by other getUpdates request``;
- ``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``, ``getMe``;
- :meth:`FakeTelegram.deliver` POSTs an update to the webhook with the secret header, as
  Telegram does (call it again with the same update for a retry).

Start it::

    fake = FakeTelegram(token="123456:" + "A" * 35)
    server = LiveServer(fake.app()).start()
    fake.base_url = server.url
"""

from __future__ import annotations

import asyncio
import html.parser
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DOWNLOAD_LIMIT = 20 * 1024 * 1024
TEXT_LIMIT = 4096
# Telegram's HTML parse mode: these tags only (https://core.telegram.org/bots/api#html-style).
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                "pre", "blockquote", "tg-emoji"}
INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "max_connections"}
JSON_PARAMS = {"allowed_updates", "reply_parameters", "link_preview_options", "reply_markup", "entities"}


@dataclass
class FakeFile:
    data: bytes
    file_path: str
    declared_size: int | None  # what updates and getFile say (None: left out)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class _HTMLCheck(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.error = ""
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = self.error or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = self.error or f'Unmatched end tag "{tag}"'

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            self.error = self.error or "Unexpected end of name token"
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ("lt", "gt", "amp", "quot"):
            self.error = self.error or f'Unsupported HTML entity "&{name};"'
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(html.unescape(f"&#{name};"))


def parse_html(text: str) -> str:
    """The plain text a person sees; raises ValueError as Telegram's "can't parse entities"."""
    check = _HTMLCheck()
    check.feed(text)
    check.close()
    if check.error or check.stack:
        raise ValueError(check.error or f'Can\'t find end tag corresponding to start tag "{check.stack[-1]}"')
    return "".join(check.text)


class ApiFailure(Exception):
    def __init__(self, code: int, description: str) -> None:
        self.code = code
        self.description = description


class FakeTelegram:
    def __init__(self, token: str, *, bot_username: str = "permachat_test_bot") -> None:
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.bot_username = bot_username
        self.base_url = ""  # set once the server runs
        self.download_limit = DOWNLOAD_LIMIT
        self.download_delay = 0.0
        self.local_mode = False
        self.local_dir: Path | None = None
        self.files: dict[str, FakeFile] = {}
        self.updates: list[dict[str, Any]] = []  # waiting to be confirmed
        self.calls: list[Call] = []
        self.downloads: list[str] = []  # file paths downloaded, in order
        self.chats: dict[int, dict[int, dict[str, Any]]] = {}  # chat id -> message id -> message
        self.webhook_url = ""
        self.webhook_secret = ""
        self.allowed_updates: list[str] = []
        self.polls_now = 0
        self.most_polls_at_once = 0
        self.conflicts = 0
        self._poll_generation = 0
        self._lock = threading.Lock()
        self._update_ids = itertools.count(100_000)
        self._message_ids: dict[int, itertools.count] = {}
        self._file_ids = itertools.count(1)
        self._http = httpx.Client(timeout=30, trust_env=False)

    # ---- what a test does ------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/bot{token}/{method}", self._method, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
        ])

    def add_file(self, data: bytes, *, declared_size: int | None = -1, name: str = "file.bin") -> str:
        """Keep ``data`` as a file the bot can fetch; its file_id. ``declared_size``: the size to claim."""
        number = next(self._file_ids)
        file_id = f"FILE{number:06d}{'x' * 20}"
        if self.local_mode:
            assert self.local_dir is not None
            path = self.local_dir / f"documents/file_{number}_{name}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            file_path = str(path)
        else:
            file_path = f"documents/file_{number}.{name.rsplit('.', 1)[-1]}"
        self.files[file_id] = FakeFile(data, file_path, len(data) if declared_size == -1 else declared_size)
        return file_id

    def user(self, user_id: int = 4242, language_code: str | None = "en", first_name: str = "Ada") -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def message(self, user: dict[str, Any], *, text: str | None = None, chat_type: str = "private",
                chat_id: int | None = None, **fields: Any) -> dict[str, Any]:
        """An update with a new message from ``user`` (kept in the chat, as Telegram keeps it)."""
        chat_id = chat_id if chat_id is not None else user["id"]
        message = {"message_id": self._next_message_id(chat_id), "from": user, "date": int(time.time()),
                   "chat": {"id": chat_id, "type": chat_type, "first_name": user.get("first_name", "")}}
        if text is not None:
            message["text"] = text
        message.update(fields)
        self.chats.setdefault(chat_id, {})[message["message_id"]] = message
        return {"update_id": next(self._update_ids), "message": message}

    def document(self, user: dict[str, Any], data: bytes, *, name: str = "file.bin", mime: str = "application/octet-stream",
                 declared_size: int | None = -1, **fields: Any) -> dict[str, Any]:
        file_id = self.add_file(data, declared_size=declared_size, name=name)
        document: dict[str, Any] = {"file_id": file_id, "file_unique_id": file_id[-12:], "file_name": name,
                                    "mime_type": mime}
        if self.files[file_id].declared_size is not None:
            document["file_size"] = self.files[file_id].declared_size
        return self.message(user, document=document, **fields)

    def photo(self, user: dict[str, Any], sizes: list[bytes]) -> dict[str, Any]:
        """A photo as Telegram sends it: every size it made, smallest first."""
        photo = []
        for i, data in enumerate(sizes):
            file_id = self.add_file(data, name="photo.jpg")
            photo.append({"file_id": file_id, "file_unique_id": f"U{i}{file_id[-10:]}", "file_size": len(data),
                          "width": 90 * (i + 1), "height": 60 * (i + 1)})
        return self.message(user, photo=photo)

    def queue(self, update: dict[str, Any]) -> None:
        """Make ``update`` available to getUpdates."""
        with self._lock:
            self.updates.append(update)

    def deliver(self, update: dict[str, Any], *, secret: str | None = None, url: str | None = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``update`` to the webhook as Telegram does (the secret header as set by setWebhook)."""
        secret = self.webhook_secret if secret is None else secret
        sent = {"Content-Type": "application/json"} | ({"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {})
        return self._http.post(url or self.webhook_url, content=json.dumps(update), headers=sent | (headers or {}))

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in the chat as they are now (after edits and deletions), oldest first."""
        return [m for _, m in sorted(self.chats.get(chat_id, {}).items()) if m.get("from", {}).get("id") == self.bot_id]

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.bot_messages(chat_id)]

    # ---- the server ------------------------------------------------------------------------

    def _next_message_id(self, chat_id: int) -> int:
        with self._lock:
            return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        if request.method == "POST":
            if content_type.startswith("application/json"):
                body = await request.body()
                if body:
                    try:
                        decoded = json.loads(body)
                    except ValueError:
                        raise ApiFailure(400, "Bad Request: can't parse JSON") from None
                    if not isinstance(decoded, dict):
                        raise ApiFailure(400, "Bad Request: request body must be a JSON object")
                    params.update(decoded)
            elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                form = await request.form()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for name in INT_PARAMS & params.keys():
            if isinstance(params[name], str):
                try:
                    params[name] = int(params[name])
                except ValueError:
                    raise ApiFailure(400, f"Bad Request: invalid {name} specified") from None
        for name in JSON_PARAMS & params.keys():
            if isinstance(params[name], str):
                try:
                    params[name] = json.loads(params[name])
                except ValueError:
                    raise ApiFailure(400, f"Bad Request: can't parse {name} JSON object") from None
        return params

    async def _method(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _failure(401, "Unauthorized")
        method = request.path_params["method"]
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            return _failure(404, "Not Found")
        try:
            params = await self._params(request)
            self.calls.append(Call(method, params))
            result = await handler(params)
        except ApiFailure as exc:
            return _failure(exc.code, exc.description)
        return JSONResponse({"ok": True, "result": result})

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _failure(401, "Unauthorized")
        path = request.path_params["path"]
        found = next((f for f in self.files.values() if f.file_path == path), None)
        if found is None or self.local_mode:
            return _failure(404, "Not Found")
        self.downloads.append(path)
        data, delay = found.data, self.download_delay

        async def body():
            for start in range(0, len(data), 65536):
                if delay and start:
                    await asyncio.sleep(delay)
                yield data[start:start + 65536]

        return StreamingResponse(body(), media_type="application/octet-stream",
                                 headers={"Content-Length": str(len(data))})

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "permachat", "username": self.bot_username}

    def _chat_message(self, params: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], int]:
        chat_id = _required(params, "chat_id")
        message_id = _required(params, "message_id")
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ApiFailure(400, "Bad Request: chat not found")
        return chat, message_id

    @staticmethod
    def _text(params: dict[str, Any]) -> str:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiFailure(400, "Bad Request: message text is empty")
        plain = text
        if str(params.get("parse_mode", "")).upper() == "HTML":
            try:
                plain = parse_html(text)
            except ValueError as exc:
                raise ApiFailure(400, f"Bad Request: can't parse entities: {exc}") from None
        if len(plain) > TEXT_LIMIT:
            raise ApiFailure(400, "Bad Request: message is too long")
        return plain

    async def _api_getme(self, params: dict[str, Any]) -> Any:
        return self._bot_user() | {"can_join_groups": True, "can_read_all_group_messages": False,
                                   "supports_inline_queries": False}

    async def _api_getfile(self, params: dict[str, Any]) -> Any:
        file_id = params.get("file_id")
        found = self.files.get(file_id) if isinstance(file_id, str) else None
        if found is None:
            raise ApiFailure(400, "Bad Request: invalid file_id")
        if (found.declared_size if found.declared_size is not None else len(found.data)) > self.download_limit:
            raise ApiFailure(400, "Bad Request: file is too big")
        result = {"file_id": file_id, "file_unique_id": file_id[-12:], "file_path": found.file_path}
        if found.declared_size is not None:
            result["file_size"] = found.declared_size
        return result

    async def _api_sendmessage(self, params: dict[str, Any]) -> Any:
        chat_id = _required(params, "chat_id")
        plain = self._text(params)
        message = {"message_id": self._next_message_id(chat_id), "from": self._bot_user(), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private"}, "text": plain, "html": params["text"]}
        reply = params.get("reply_parameters")
        if isinstance(reply, dict) and "message_id" in reply:
            message["reply_to"] = reply["message_id"]
        self.chats.setdefault(chat_id, {})[message["message_id"]] = message
        return {k: v for k, v in message.items() if k != "html"}

    async def _api_editmessagetext(self, params: dict[str, Any]) -> Any:
        chat, message_id = self._chat_message(params)
        message = chat.get(message_id)
        if message is None:
            raise ApiFailure(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise ApiFailure(400, "Bad Request: message can't be edited")
        plain = self._text(params)
        if params["text"] == message["html"]:
            raise ApiFailure(400, "Bad Request: message is not modified: specified new message content and reply "
                                  "markup are exactly the same as a current content and reply markup of the message")
        message.update(text=plain, html=params["text"], edit_date=int(time.time()))
        return {k: v for k, v in message.items() if k != "html"}

    async def _api_deletemessage(self, params: dict[str, Any]) -> Any:
        chat, message_id = self._chat_message(params)
        if chat.pop(message_id, None) is None:
            raise ApiFailure(400, "Bad Request: message to delete not found")
        return True

    async def _api_getupdates(self, params: dict[str, Any]) -> Any:
        if self.webhook_url:
            raise ApiFailure(409, "Conflict: can't use getUpdates method while webhook is active; use "
                                  "deleteWebhook to delete the webhook first")
        offset = params.get("offset")
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(0, int(params.get("timeout") or 0))
        with self._lock:
            self._poll_generation += 1
            generation = self._poll_generation
            self.polls_now += 1
            self.most_polls_at_once = max(self.most_polls_at_once, self.polls_now)
        try:
            deadline = time.monotonic() + timeout
            while True:
                with self._lock:
                    if generation != self._poll_generation:
                        self.conflicts += 1
                        raise ApiFailure(409, "Conflict: terminated by other getUpdates request; make sure that "
                                              "only one bot instance is running")
                    if isinstance(offset, int):  # confirms every update below it
                        self.updates = [u for u in self.updates if u["update_id"] >= offset]
                    if self.updates or time.monotonic() >= deadline:
                        return self.updates[:limit]
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self.polls_now -= 1

    async def _api_setwebhook(self, params: dict[str, Any]) -> Any:
        url = params.get("url")
        if not isinstance(url, str):
            raise ApiFailure(400, "Bad Request: parameter \"url\" is required")
        secret = params.get("secret_token", "")
        if secret and not all(c.isalnum() or c in "_-" for c in secret):
            raise ApiFailure(400, "Bad Request: secret token contains unallowed characters")
        self.webhook_url, self.webhook_secret = url, secret
        self.allowed_updates = list(params.get("allowed_updates") or [])
        return True

    async def _api_deletewebhook(self, params: dict[str, Any]) -> Any:
        self.webhook_url, self.webhook_secret = "", ""
        return True

    async def _api_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {"url": self.webhook_url, "has_custom_certificate": False,
                                "pending_update_count": len(self.updates)}
        if self.allowed_updates:
            info["allowed_updates"] = self.allowed_updates
        return info


def _required(params: dict[str, Any], name: str) -> Any:
    if name not in params:
        raise ApiFailure(400, f"Bad Request: {name} is empty" if name != "chat_id" else "Bad Request: chat_id is empty")
    return params[name]


def _failure(code: int, description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=code)
