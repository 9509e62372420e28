"""The HTTP client every upstream call goes through: httpx's API on aiohttp's connection pool.

aiohttp's pool holds up under many concurrent streams where httpcore's degrades
(ARCHITECTURE.md), so the client is ``httpx.AsyncClient`` over
``httpx_aiohttp.AiohttpTransport``: adaptors keep httpx's requests, responses
and errors.

The relay's hot path (OpenAI-compatible chat, streamed or not) sends through
:func:`send`, which hands the request straight to the transport. The client's
own ``send`` would also run a cookie jar, auth flows, redirect handling, event
hooks and a URL merge per request: a relay uses none of them, and on this stack
they cost about as much as the transport itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

import httpx
from httpx_aiohttp import AiohttpTransport


class Attempt:
    """Whether one attempt's request left this process: what the relay bills the prompt on."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


# Set by the relay around each attempt; the transport marks it as a request goes out.
current_attempt: ContextVar[Attempt | None] = ContextVar("permachat_attempt", default=None)

# Failures that prove nothing reached the upstream: no connection was made.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.InvalidURL,
             httpx.UnsupportedProtocol)


class MarkingTransport(httpx.AsyncBaseTransport):
    """A transport that tells the current :class:`Attempt` a request was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = current_attempt.get()
        if attempt is None:
            return await self.inner.handle_async_request(request)
        was_sent, attempt.sent = attempt.sent, True
        try:
            return await self.inner.handle_async_request(request)
        except _NOT_SENT:
            attempt.sent = was_sent
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


class UpstreamClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that keeps a public handle on its one transport."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout, limits: httpx.Limits) -> None:
        super().__init__(transport=transport, timeout=timeout, limits=limits, trust_env=False)
        self.relay_transport = transport
        self.relay_timeout = timeout.as_dict()


def upstream_client(read_timeout: float, max_connections: int = 4096) -> UpstreamClient:
    # Every running stream holds one connection for its whole life: the limit is how many streams one
    # worker relays at once (bench/sustained.py: at 512, the 513th of 1,000 slow streams waited seconds).
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=256, keepalive_expiry=30)
    timeout = httpx.Timeout(connect=10, read=read_timeout, write=60, pool=10)
    transport = MarkingTransport(AiohttpTransport(limits=limits, trust_env=False))
    return UpstreamClient(transport=transport, timeout=timeout, limits=limits)


_urls: dict[str, httpx.URL] = {}


def _url(text: str) -> httpx.URL:
    # A channel's few URLs are parsed once, not on every request.
    url = _urls.get(text)
    if url is None:
        if len(_urls) > 10_000:
            _urls.clear()
        url = _urls[text] = httpx.URL(text)
    return url


async def send(http: httpx.AsyncClient, method: str, url: str, *, content: bytes,
               headers: Mapping[str, str]) -> httpx.Response:
    """Send a request and return the response with its body unread: close it when done.

    Straight to the transport when ``http`` is an :class:`UpstreamClient`, through
    the client's ``send`` otherwise (a plain client, as some tests pass).
    Raises httpx's errors either way.
    """
    if isinstance(http, UpstreamClient):
        request = httpx.Request(method, _url(url), content=content, headers=headers,
                                extensions={"timeout": http.relay_timeout})
        return await http.relay_transport.handle_async_request(request)
    return await http.send(http.build_request(method, url, content=content, headers=headers), stream=True)
