"""Row ids as they arrive in URLs, query strings and forms.

A database id is a signed 64-bit integer; a bigger number in a URL made SQLite
raise ``OverflowError`` (a 500) where it should simply find nothing (a 404).
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1


def parse_id(raw: Any) -> int | None:
    """``raw`` as an id a table can hold (ASCII digits, at most :data:`MAX_ID`), else None."""
    text = str(raw if raw is not None else "").strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: numbers past :data:`MAX_ID` do not match, so they are a 404."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
