"""CORS for the gateway's paths, so tools that run in a page or an extension can call it.

OpenAI Translator, Immersive Translate, NextChat's web build and browser
playgrounds call ``/v1/...`` from another origin: their preflight (``OPTIONS``)
is answered here, with any method and request header (the SDKs add their own
``x-stainless-*`` headers beside ``Authorization``, ``x-api-key``, ``api-key``,
``x-goog-api-key``, ``anthropic-version``...), and every answer carries
``Access-Control-Allow-Origin: *`` and exposes ``X-Request-Id``.

The wildcard origin is also the guarantee that cookies never cross: a browser
refuses to send credentials to, or read a credentialed answer from, an origin
that answers ``*``. The gateway authenticates by key only. The web app's pages
are not covered and stay same-origin.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
MAX_AGE = 86400  # seconds a browser may remember a preflight


class GatewayCORS:
    """Wraps ``app``; requests to the gateway's paths that carry an ``Origin`` get CORS, the rest pass untouched."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute], prefixes: tuple[str, ...] = ("/v1/",)) -> None:
        self.app = app
        self.prefixes = prefixes
        self.patterns = [route.path_regex for route in routes if isinstance(route, Route)]
        self.cors = CORSMiddleware(app, allow_origins=["*"], allow_methods=METHODS, allow_headers=["*"],
                                   expose_headers=["X-Request-Id"], allow_credentials=False, max_age=MAX_AGE)

    def covers(self, path: str) -> bool:
        return path.startswith(self.prefixes) or any(p.match(path) for p in self.patterns)

    def wants(self, scope: Scope) -> bool:
        """A cross-origin request (it has an ``Origin``) to one of the gateway's paths."""
        return scope["type"] == "http" and _has_origin(scope) and self.covers(scope["path"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self.cors if self.wants(scope) else self.app)(scope, receive, send)


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])



