"""Keeping API keys out of the logs.

Clients may send the key in the query string (``?key=sk-...``, as Gemini's
clients do), and uvicorn's access log prints every path with its query. The
filter here rewrites each record's arguments before it is formatted, so no log
line (access log or any other) ever holds a key: ``key=`` values and anything
shaped like a permachat key (``sk-`` and 48 letters or digits) become
``[redacted]``, and so does a Telegram bot token.
"""

from __future__ import annotations

import logging
import re

# A query parameter that carries a credential, and a key wherever it appears.
_SECRET_PARAM = re.compile(r"(?i)([?&](?:key|api[-_]?key|access_token|ticket)=)[^&\s\"]*")
_KEY = re.compile(r"sk-[A-Za-z0-9]{16,}")
# A Telegram bot token, which is part of every Bot API URL (httpx logs request URLs at INFO).
_BOT_TOKEN = re.compile(r"(?<![0-9])[0-9]{1,20}:[A-Za-z0-9_-]{30,}")
REDACTED = "[redacted]"
LOGGERS = ("uvicorn.access", "uvicorn.error", "permachat", "permachat.gateway", "permachat.arweave",
           "permachat.telegram", "httpx")


def redact(text: str) -> str:
    text = _KEY.sub(REDACTED, _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, text))
    return _BOT_TOKEN.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


_FILTER = RedactSecrets()


def install() -> None:
    """Put the filter on the loggers that may see a request's URL (idempotent).

    Called from the app's lifespan, after uvicorn has configured its loggers,
    so that every worker process gets it. A filter on a logger (not a handler)
    sees only records logged there, hence the list.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
