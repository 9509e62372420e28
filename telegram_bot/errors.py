"""What can go wrong talking to the Bot API, as one tree (:mod:`telegram_bot.api` maps every failure here).

    TelegramError
    ├── NetworkError        the server could not be reached, or answered something that is not the Bot API
    └── ApiError            {"ok": false, "error_code": N, "description": "..."}
        ├── BadRequest      400  (a bad parameter, "file is too big", "message is not modified", ...)
        ├── Unauthorized    401  the bot token is wrong or revoked
        ├── Forbidden       403  the user blocked the bot, or the bot may not write there
        ├── NotFound        404  no such method (a bad API base URL) or file
        ├── Conflict        409  another getUpdates poller, or a webhook is set while polling
        └── RetryAfter      429  flood control: wait ``retry_after`` seconds

Messages never contain the bot token (it is part of every URL, so URLs are left out).
"""

from __future__ import annotations


class TelegramError(Exception):
    """Anything that stopped a Bot API call."""


class NetworkError(TelegramError):
    pass


class ApiError(TelegramError):
    error_code = 0

    def __init__(self, description: str, *, error_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        if error_code is not None:
            self.error_code = error_code
        self.retry_after = retry_after


class BadRequest(ApiError):
    error_code = 400


class Unauthorized(ApiError):
    error_code = 401


class Forbidden(ApiError):
    error_code = 403


class NotFound(ApiError):
    error_code = 404


class Conflict(ApiError):
    error_code = 409


class RetryAfter(ApiError):
    error_code = 429


_BY_CODE: dict[int, type[ApiError]] = {cls.error_code: cls for cls in
                                       (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, RetryAfter)}


def api_error(error_code: int, description: str, retry_after: float | None = None) -> ApiError:
    """The exception for a Bot API error answer."""
    return _BY_CODE.get(error_code, ApiError)(description, error_code=error_code, retry_after=retry_after)
