"""The gateway's whole public surface: :class:`Gateway`.

The HTTP routes (``/v1/...`` and the same paths without ``/v1``), the chat page
(in-process) and the uploads code all go through one ``Gateway`` per process:

    gw = Gateway(settings, http)          # http: the shared httpx.AsyncClient
    await gw.start()                      # caches, log writer
    routes = gw.routes()                  # plain Starlette routes for the root app
    auth = await gw.authenticate(key, client_ip)
    async with gw.chat(auth, body) as stream:
        async for chunk in stream:        # OpenAI chat.completion.chunk dicts
            ...
    stream.usage, stream.cost_quota, stream.finish_reason
    await gw.stop()                       # flushes the usage log

Error contract of :meth:`Gateway.chat`: everything that can go wrong before the
first chunk (bad body, model not allowed, no price, no quota, rate limit, every
channel failing) raises a :class:`gateway.errors.GatewayError` from
``__aenter__``; nothing has been billed then. A failure after the first chunk
raises :class:`gateway.errors.UpstreamError` from the iteration, after the
chunks that did arrive; the request is billed for what was generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from starlette.routing import BaseRoute

from gateway.auth import KeyInfo
from gateway.relay import ChatStream
from gateway.settings import Settings


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalog, as the pricing page and the model picker show it."""

    id: str
    channel_types: tuple[str, ...]  # the types of the enabled channels serving it
    input_per_million: int | None  # units per million prompt tokens; None: no price set
    output_per_million: int | None
    per_call: int | None
    priced_by_default: bool  # True when the admin's default price applies, not its own
    vision: bool | None  # None: unknown
    tools: bool | None
    allowed: bool  # may this key use it (True for everyone when no key is given and it is priced)
    reason: str  # why not, when not allowed: "not allowed for this key", "no price set"


class Gateway:
    """One per process; cheap to call from any task once :meth:`start` has run."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def start(self) -> None:
        """Load channels and prices, start the log writer. Call once, inside the event loop."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop background work and write every queued log row (and settlement) before returning."""
        raise NotImplementedError

    def routes(self) -> list[BaseRoute]:
        """Every HTTP endpoint, each path both with and without the ``/v1`` prefix.

        Plain routes, to be added to the root app before the Flask mount (lifespan
        does not reach mounted apps). Other request formats add theirs through
        :data:`gateway.routes.EXTRA_ROUTES`.
        """
        raise NotImplementedError

    async def authenticate(self, key: str | None, client_ip: str) -> KeyInfo:
        """Check an API key as sent by a client; raises ``AuthenticationError``/``PermissionDenied``/..."""
        raise NotImplementedError

    async def auth_for_token(self, token_id: int, client_ip: str) -> KeyInfo:
        """Check a key by its row id (the chat page's server-held keys, the free tier's system key)."""
        raise NotImplementedError

    def chat(self, auth: KeyInfo, body: dict[str, Any], *, client_ip: str = "",
             request_id: str | None = None) -> ChatStream:
        """A streamed chat completion as an async context manager (see the module docstring).

        ``body`` is an OpenAI chat request (``stream`` is ignored: this always
        streams). The usage chunk is yielded only if ``body`` asks for
        ``stream_options.include_usage``. Leaving the block early cancels the
        upstream request at once and bills what was generated (at least the prompt).
        """
        raise NotImplementedError

    async def complete(self, auth: KeyInfo, body: dict[str, Any], *, client_ip: str = "",
                       request_id: str | None = None) -> dict[str, Any]:
        """A non-stream chat completion: the ``chat.completion`` object, billed and logged."""
        raise NotImplementedError

    async def model_catalog(self, auth: KeyInfo | None) -> list[ModelEntry]:
        """Every model an enabled channel serves, priced, and whether ``auth`` may use it."""
        raise NotImplementedError
