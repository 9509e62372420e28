"""Noticing a client that hangs up while the gateway is still waiting on an upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from gateway.errors import ClientGone

T = TypeVar("T")


async def while_connected(request: Request, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` (opening an upstream stream), cancelled the moment the client hangs up.

    Until the first byte goes back nobody else listens for the disconnect: without
    this a client that left while a model was still thinking kept the upstream
    request running until it answered. Raises :class:`ClientGone` then.
    """
    task = asyncio.ensure_future(awaitable)
    receive = request.receive  # the body is read: the next message is the disconnect

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise ClientGone("the client closed the connection before the answer began") from None
        raise
    finally:
        watcher.cancel()
