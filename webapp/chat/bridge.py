"""Calling the async gateway from a Flask view.

Flask views run on a2wsgi's worker threads while the :class:`gateway.service.Gateway`
lives on the server's event loop (``app.state.gateway``, set by the ASGI
lifespan). A view hands the coroutine to that loop and waits for the answer, so
the chat uses the very same gateway (caches, limits, log writer) as ``/v1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from flask import request

T = TypeVar("T")
TIMEOUT = 15.0


class GatewayUnavailable(RuntimeError):
    """The page was not served by the ASGI app (or before its start-up finished)."""


def _scope_app() -> Any:
    scope = request.environ.get("asgi.scope") or {}
    return scope.get("app")


def gateway() -> Any:
    app = _scope_app()
    gw = getattr(getattr(app, "state", None), "gateway", None) if app is not None else None
    if gw is None:
        raise GatewayUnavailable("the gateway is not running in this process")
    return gw


def _loop() -> asyncio.AbstractEventLoop:
    app = _scope_app()
    loop = getattr(getattr(app, "state", None), "loop", None)
    if loop is None:
        # a2wsgi's request body object holds the loop the request came in on.
        loop = getattr(request.environ.get("wsgi.input"), "loop", None)
    if loop is None:
        raise GatewayUnavailable("no event loop to reach the gateway on")
    return loop


def call(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run ``await fn(*args, **kwargs)`` on the server's loop from this view's thread."""
    future = asyncio.run_coroutine_threadsafe(_run(fn, args, kwargs), _loop())
    return future.result(TIMEOUT)


async def _run(fn: Callable[..., Awaitable[T]], args: tuple, kwargs: dict) -> T:
    return await fn(*args, **kwargs)


def run_on_loop(callback: Callable[[], Any]) -> None:
    """Schedule a plain callback on the server's loop (e.g. to stop a running generation)."""
    _loop().call_soon_threadsafe(callback)
