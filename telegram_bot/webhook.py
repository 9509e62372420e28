"""The webhook: ``POST PERMACHAT_TELEGRAM_WEBHOOK_PATH``, one update per call, as Telegram sends them.

Every call must carry the secret given to ``setWebhook`` in
``X-Telegram-Bot-Api-Secret-Token`` (401 otherwise, and nothing is read). The
update is claimed before the answer, and handled afterwards in a task: Telegram
gets its 200 at once (it resends an update whose call fails or times out, and
the claim makes that resend a no-op).
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kernel.settings import Settings
from telegram_bot.types import Update

log = logging.getLogger("permachat.telegram")

SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_UPDATE_BYTES = 1024 * 1024  # an update is a few KB


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


async def receive(request: Request) -> Response:
    """One update from Telegram: checked, claimed, answered, then handled."""
    service = request.app.state.telegram
    expected = service.settings.telegram_webhook_secret.encode()
    if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), expected):
        return _error(401, "wrong or missing X-Telegram-Bot-Api-Secret-Token")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPDATE_BYTES:
                return _error(413, "an update is never this large")
    except ClientDisconnect:
        return _error(400, "the update was cut off")
    try:
        data = json.loads(body)
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _error(400, "the body is not JSON (Telegram sends each update as a JSON object)")
    try:
        update = Update.parse(data)
    except ValueError as exc:
        return _error(400, f"not a Telegram update: {exc}")
    try:
        await service.accept(update)
    except Exception:  # the database is away: Telegram sends the update again later
        log.exception("telegram: could not claim update %d", update.update_id)
        return _error(503, "the update could not be recorded; send it again")
    return JSONResponse({"ok": True})


def routes(settings: Settings) -> list[BaseRoute]:
    """The webhook route, when the bot is on in webhook mode."""
    if not settings.telegram_enabled or settings.telegram_mode != "webhook":
        return []
    return [Route(settings.telegram_webhook_path, receive, methods=["POST"])]
