"""The hot path of one chat request: reserve, pick a channel, stream, settle, log.

:class:`ChatStream` is what :meth:`gateway.service.Gateway.chat` returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from gateway.adaptors.base import Usage


class ChatStream:
    """An async context manager over one streamed chat completion.

    ``__aenter__`` validates, reserves quota and opens the upstream stream up to
    its first chunk, failing over between channels; it raises ``GatewayError``
    when none works. Iterating yields OpenAI ``chat.completion.chunk`` dicts.
    ``__aexit__`` closes the upstream (cancelling it if still running), settles
    the reservation to what was generated and queues the log row. After the block:
    """

    request_id: str
    model: str  # as the client asked
    usage: Usage | None  # None only if the request never reached an upstream
    cost_quota: int  # units charged
    finish_reason: str | None  # "stop", "length", "tool_calls"...; None when cut short
    error: str  # what went wrong mid-stream, "" when nothing did

    async def __aenter__(self) -> ChatStream:
        raise NotImplementedError

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError
