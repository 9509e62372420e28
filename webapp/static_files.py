"""The site's static files: versioned URLs, cached for a year, compressed.

Templates ask ``url_for('static', filename=...)`` as usual; :func:`init_app` makes
that URL carry ``?v=`` and the first 12 hex digits of the file's SHA-256, so a
browser may keep it for a year (``immutable``) and a new release, whose files
hash differently, is fetched at once. A request without the current version (an
old page, a hand-typed URL) is answered with ``no-cache`` (revalidated by ETag).
Text files go out gzip-compressed to browsers that accept it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Flask
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

YEAR = 365 * 24 * 3600
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class Versions:
    """Each file's version (its content hash), read again only when the file changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._known: dict[str, tuple[tuple[float, int], str]] = {}

    def of(self, filename: str) -> str | None:
        path = (self.directory / filename).resolve()
        if not path.is_relative_to(self.directory.resolve()):
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime, stat.st_size)
        known = self._known.get(filename)
        if known is None or known[0] != stamp:
            known = (stamp, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
            self._known[filename] = known
        return known[1]


class StaticAssets:
    """StaticFiles with the cache headers above, behind gzip."""

    def __init__(self, directory: Path, versions: Versions) -> None:
        self.versions = versions
        self.app = GZipMiddleware(StaticFiles(directory=directory), minimum_size=512)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = dict(part.split("=", 1) for part in scope.get("query_string", b"").decode().split("&")
                     if "=" in part).get("v")
        filename = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/")
        current = self.versions.of(filename) if asked else None
        policy = f"public, max-age={YEAR}, immutable" if asked and asked == current else "no-cache"

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"cache-control", policy.encode())]
            await send(message)

        await self.app(scope, receive, with_policy)


def init_app(app: Flask) -> Versions:
    """``url_for('static', filename=...)`` gains ``v``, the file's version; the versions, for the ASGI mount."""
    versions = app.extensions["permachat.static_versions"] = Versions(STATIC_DIR)

    @app.url_defaults
    def _version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            version = versions.of(values["filename"])
            if version:
                values["v"] = version

    return versions
