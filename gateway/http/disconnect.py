"""Noticing a client that hangs up, from the moment its body is read to the end of its stream.

One :class:`DisconnectWatch` (one small task awaiting the ASGI ``receive``)
serves a request's whole life: while the upstream stream is being opened it
cancels the request's task (:func:`while_connected`), and while the stream is
relayed it cancels the relaying (``ChatEventStream``). Before it, a client that
left while a model was still thinking kept the upstream request running until
the upstream answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.types import Receive

from kernel.errors import ClientGone

T = TypeVar("T")


class DisconnectWatch:
    """Calls the current ``on_gone`` callback once the client has gone away."""

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._on_gone: Callable[[], object] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run(receive))

    async def _run(self, receive: Receive) -> None:
        # The body is read: the next message is the disconnect.
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self._on_gone is not None:
            self._on_gone()

    def on_gone(self, callback: Callable[[], object] | None) -> None:
        """What to cancel when the client goes (None: nothing); called at once if it already went."""
        self._on_gone = callback
        if self.gone and callback is not None:
            callback()

    def stop(self) -> None:
        self._on_gone = None
        self._task.cancel()


async def while_connected(watch: DisconnectWatch, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` (opening an upstream stream), cancelled the moment the client hangs up.

    Raises :class:`ClientGone` then. The watch stays running for the relaying.
    """
    task = asyncio.current_task()
    assert task is not None
    watch.on_gone(task.cancel)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if watch.gone and task.uncancel() == 0:
            raise ClientGone("the client closed the connection before the answer began") from None
        raise
    finally:
        watch.on_gone(None)
