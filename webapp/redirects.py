"""Where a page may send the visitor next: only to a path of this site.

Every redirect to a place the request names (``next=``, the form's ``next``, the
Referer) goes through :func:`safe_next`. Browsers forgive a lot in a URL: they
drop tabs and newlines, read ``\\`` as ``/`` and ``//host`` as another site, so
``/%09/evil`` or ``/\\evil`` lead away from a check that only looks at the first
characters. Rather than repair such a value, refuse it: our own links are plain
ASCII paths, so nothing legitimate is lost.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import request

MAX_LENGTH = 2048


def _plain_path(target: str) -> bool:
    """A path that every browser reads the same way: ``/`` then not ``/`` or ``\\``, no spaces or controls."""
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        return False
    if "\\" in target or any(not 0x21 <= ord(c) <= 0x7E for c in target):
        return False
    # Decoded once more, the same must hold: some proxies and frameworks decode again.
    decoded = unquote(target)
    return not (decoded[1:2] in ("/", "\\") or "\\" in decoded
                or any(ord(c) < 0x21 or ord(c) == 0x7F for c in decoded))


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path of this site (an absolute URL of this very host is cut to its path), else ``default``."""
    if not isinstance(target, str) or not target or len(target) > MAX_LENGTH:
        return default
    if not target.startswith("/"):
        # A Referer is an absolute URL; keep it only when it names this host over http(s).
        if any(not 0x21 <= ord(c) <= 0x7E for c in target):
            return default
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or parts.netloc != request.host or parts.username:
            return default
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
    return target if _plain_path(target) else default
