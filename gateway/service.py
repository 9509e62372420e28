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
channel failing) raises a :class:`kernel.errors.GatewayError` from
``__aenter__``; nothing has been billed then. A failure after the first chunk
raises :class:`kernel.errors.UpstreamError` from the iteration, after the
chunks that did arrive; the request is billed for what was generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx
from starlette.routing import BaseRoute

from billing import tokens
from billing.holds import Registry
from billing.ledger import Ledger
from gateway.adaptors.base import CHAT, ChatRequest, Usage
from gateway.auth import KeyCache, KeyInfo, check_key, load_key_by_id
from gateway.channels import REFRESH_SECONDS, ChannelPool, load_snapshot
from gateway.invalidation import Watcher
from gateway.ratelimit import RateLimiter
from gateway.relay import ChatStream, Relay
from gateway.suspensions import SuspensionBus
from gateway.validation import validate_chat
from kernel.db import run_sync
from kernel.errors import AuthenticationError
from kernel.models import RequestLog, Token, User
from kernel.settings import Settings

log = logging.getLogger("permachat.gateway")

# Capabilities by model-name prefix, for the model picker; None where unknown.
_VISION = ("gpt-4o", "gpt-4.1", "gpt-4-turbo", "gpt-5", "o1", "o3", "o4", "claude-3", "claude-sonnet", "claude-opus",
           "claude-haiku", "gemini", "llama-4", "pixtral", "qwen-vl", "grok-2-vision")
_TOOLS = _VISION + ("gpt-3.5-turbo", "gpt-4", "deepseek-chat", "llama-3", "mistral", "qwen")


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
        self.keys = KeyCache()
        self.pool = ChannelPool()
        self.registry = Registry(timeout=settings.process_timeout_seconds)
        self.ledger = Ledger(self.registry.id)
        self.limiter = RateLimiter(settings.redis_url, settings.secret_key)
        self.relay = Relay(http, self.pool, self.ledger, self.limiter, default_max_tokens=settings.default_max_tokens,
                           process_id=self.registry.id)
        # With Redis, a channel suspended here is suspended on every replica (gateway.suspensions).
        self.suspensions = (SuspensionBus(settings.redis_url, settings.secret_key, self.pool, self.registry.id)
                            if settings.redis_url else None)
        # Another process announcing a change (gateway.invalidation) renews the caches within a second.
        self.watcher = Watcher(self._caches_changed)
        self._refresher: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register the process (settling what dead ones left), load channels and prices, start the log writer.

        Call once, inside the event loop.
        """
        await self.registry.start()
        await self.watcher.prime()  # before loading: a change announced meanwhile is then seen as one
        await self.refresh()
        self.ledger.start()
        loop = asyncio.get_running_loop()
        self._refresher = loop.create_task(self._refresh_loop(), name="permachat-channels")
        self._watching = loop.create_task(self.watcher.run(), name="permachat-cache-watch")
        if self.suspensions is not None:
            self.suspensions.start()

    async def stop(self) -> None:
        """Stop background work and write every queued log row (and settlement) before returning."""
        for task in (self._refresher, self._watching):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._refresher = self._watching = None
        if self.suspensions is not None:
            await self.suspensions.stop()
        await self.ledger.close()
        await self.registry.stop()  # after the ledger: only what it could not settle is left
        await self.limiter.close()

    async def refresh(self) -> None:
        """Reload channels and prices now (after an admin changed them)."""
        self.pool.replace(await run_sync(load_snapshot))

    async def _caches_changed(self) -> None:
        self.keys.forget()
        await self.refresh()

    async def flush(self) -> None:
        """Write every queued settlement and log row now."""
        await self.ledger.flush()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:  # a database hiccup: keep serving from the last view
                log.exception("could not reload channels and prices")

    def routes(self) -> list[BaseRoute]:
        """Every HTTP endpoint, each path both with and without the ``/v1`` prefix.

        Plain routes, to be added to the root app before the Flask mount (lifespan
        does not reach mounted apps). Other request formats add theirs through
        :data:`gateway.http.routes.EXTRA_ROUTES`.
        """
        from gateway.http.routes import build_routes

        return build_routes(self)

    async def authenticate(self, key: str | None, client_ip: str) -> KeyInfo:
        """Check an API key as sent by a client; raises ``AuthenticationError``/``PermissionDenied``/..."""
        if not key:
            raise AuthenticationError("You didn't provide an API key. Send it as 'Authorization: Bearer sk-...'.")
        hit, info = self.keys.peek(key)
        if not hit:
            info = await run_sync(lambda: self.keys.lookup(key))
        return check_key(info, client_ip)

    async def auth_for_token(self, token_id: int, client_ip: str) -> KeyInfo:
        """Check a key by its row id (the chat page's server-held keys, the free tier's system key)."""
        return check_key(await run_sync(lambda: load_key_by_id(token_id)), client_ip)

    def chat(self, auth: KeyInfo, body: dict[str, Any], *, client_ip: str = "",
             request_id: str | None = None) -> ChatStream:
        """A streamed chat completion as an async context manager (see the module docstring).

        ``body`` is an OpenAI chat request (``stream`` is ignored: this always
        streams). The usage chunk is yielded only if ``body`` asks for
        ``stream_options.include_usage``. Leaving the block early cancels the
        upstream request at once and bills what was generated (at least the prompt).
        """
        return ChatStream(self.relay, auth, body, client_ip=client_ip, request_id=request_id)

    async def complete(self, auth: KeyInfo, body: dict[str, Any], *, client_ip: str = "",
                       request_id: str | None = None, path: str = "/v1/chat/completions") -> dict[str, Any]:
        """A non-stream chat completion: the ``chat.completion`` object, billed and logged."""
        model = validate_chat(body)
        call = await self.relay.prepare(auth, endpoint=CHAT, path=path, model=model,
                                        estimate=Usage(prompt_tokens=tokens.estimate_chat_prompt(body)),
                                        client_ip=client_ip, request_id=request_id, is_stream=False,
                                        output=self.relay.chat_output(body))
        result = await self.relay.serve(call, lambda adaptor, upstream_model: adaptor.complete(ChatRequest(
            body=self.relay.chat_body({**body, "model": upstream_model}, adaptor), model=model,
            upstream_model=upstream_model, request_id=call.request_id)),
            cut_usage=lambda: Usage(prompt_tokens=tokens.count_chat_prompt(body)))
        call.mark_first_token()
        usage = result.usage
        if usage is None:
            prompt = await anyio.to_thread.run_sync(lambda: tokens.count_chat_prompt(body))
            texts = [str((c.get("message") or {}).get("content") or "") for c in result.body.get("choices") or ()]
            completion = await anyio.to_thread.run_sync(lambda: sum(tokens.count(t) for t in texts))
            usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        self.relay.finish(call, usage)
        return result.body

    async def model_catalog(self, auth: KeyInfo | None) -> list[ModelEntry]:
        """Every model an enabled channel serves, priced, and whether ``auth`` may use it."""
        snap = self.pool.snapshot
        entries = []
        for model in sorted(snap.by_model):
            channels = snap.by_model[model]
            if not channels:
                continue
            price = snap.prices.get(model) or snap.default_price
            reason = ""
            if price is None:
                reason = "no price set"
            elif auth is not None and not auth.allows_model(model):
                reason = "not allowed for this key"
            entries.append(ModelEntry(
                id=model, channel_types=tuple(sorted({c.type for c in channels})),
                input_per_million=price.input_per_million if price else None,
                output_per_million=price.output_per_million if price else None,
                per_call=price.per_call if price else None, priced_by_default=bool(price and price.is_default),
                vision=True if model.startswith(_VISION) else None,
                tools=True if model.startswith(_TOOLS) else None,
                allowed=not reason, reason=reason))
        return entries

    async def balance(self, auth: KeyInfo) -> Balance:
        """What the key can still spend and has spent, fresh from the database."""
        def read() -> Balance:
            token = Token.get_by_id(auth.token_id)
            user = User.get_by_id(auth.user_id)
            if token.unlimited:
                return Balance(remaining=max(0, user.quota), used=user.used_quota)
            return Balance(remaining=max(0, min(token.remain_quota, user.quota)), used=token.used_quota)

        return await run_sync(read)

    async def spend_by_day(self, auth: KeyInfo, start: dt.date, end: dt.date) -> dict[dt.date, dict[str, int]]:
        """Units spent per UTC day and model in ``[start, end)``: the key's, or the account's for an unlimited key.

        The same scope as :meth:`balance`'s ``used``, read from the usage log.
        """
        def read() -> dict[dt.date, dict[str, int]]:
            whose = (RequestLog.user_id == auth.user_id) if auth.unlimited else (RequestLog.token_id == auth.token_id)
            rows = (RequestLog.select(RequestLog.created_at, RequestLog.model, RequestLog.quota)
                    .where(whose & (RequestLog.quota > 0) & RequestLog.kind.in_(("relay", "upload"))
                           & (RequestLog.created_at >= dt.datetime.combine(start, dt.time()))
                           & (RequestLog.created_at < dt.datetime.combine(end, dt.time())))
                    .tuples())
            days: dict[dt.date, dict[str, int]] = {}
            for created_at, model, units in rows:
                per_model = days.setdefault(created_at.date(), {})
                per_model[model] = per_model.get(model, 0) + units
            return days

        return await run_sync(read)


@dataclass(frozen=True)
class Balance:
    remaining: int  # units
    used: int
