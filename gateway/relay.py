"""The hot path of a request: check, reserve, pick a channel (failing over), call, settle, log.

:class:`Relay` holds what every request shares (the channel pool, the ledger,
the rate limiter, the HTTP client); :class:`Call` is one request's bookkeeping
from reservation to log row; :class:`ChatStream` is a streamed chat completion
(what :meth:`gateway.service.Gateway.chat` returns).

Two database writes happen per request: the reservation (an atomic conditional
UPDATE, which must happen before the upstream is called; on SQLite it usually
runs inline, see :func:`billing.writes.try_inline`, else in the writer thread)
and the settlement with its log row, batched off the request's path (see
:mod:`billing.ledger`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from billing import quota, tokens
from billing.ledger import Entry, Ledger
from billing.prices import Price
from billing.writes import run_write, try_inline
from gateway import http_client
from gateway.adaptors._sse import parse_payload
from gateway.adaptors.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Adaptor,
    ChatRequest,
    FailureKind,
    ForwardRequest,
    ForwardResult,
    JSONRequest,
    RawChunk,
    UpstreamFailure,
    Usage,
)
from gateway.auth import KeyInfo
from gateway.channels import ChannelInfo, ChannelPool, disable_channel, record_error
from gateway.ratelimit import RateLimiter
from gateway.validation import validate_chat, validate_completion, wants_usage
from kernel.errors import (
    GatewayError,
    InsufficientQuotaError,
    NotFound,
    PermissionDenied,
    UpstreamError,
    UpstreamUnavailable,
)
from kernel.money import format_usd

T = TypeVar("T")
MAX_ATTEMPTS = 5
MIN_HOLD = 1  # units a priced request holds at least (see Relay.prepare)
# How often a stream records on its hold what it has generated (what a crash would bill; see billing.holds).
CHECKPOINT_SECONDS = 2.0
CLIENT_CLOSED = 499  # nginx's status for "the client went away"


def new_request_id() -> str:
    # 32 random hex digits, like uuid4().hex, at a fifth of its cost.
    return os.urandom(16).hex()


@dataclass
class Call:
    """One request's bookkeeping, from the reservation to the log row."""

    auth: KeyInfo
    endpoint: str
    path: str
    model: str
    price: Price
    request_id: str
    client_ip: str
    is_stream: bool
    reservation: quota.Reservation | None = None
    channel: ChannelInfo | None = None
    upstream_model: str = ""
    reached_upstream: bool = False
    started: float = field(default_factory=time.monotonic)
    ttft_ms: int | None = None
    finished: bool = False

    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = int((time.monotonic() - self.started) * 1000)


class Relay:
    def __init__(self, http: httpx.AsyncClient, pool: ChannelPool, ledger: Ledger, limiter: RateLimiter, *,
                 default_max_tokens: int = tokens.DEFAULT_MAX_OUTPUT, process_id: str = "") -> None:
        self.http = http
        # Written on every hold this relay takes: the process that must settle it (see billing.holds).
        self.process_id = process_id
        self.pool = pool
        self.ledger = ledger
        self.limiter = limiter
        # The output limit sent (and reserved) for a chat request that sets none.
        self.default_max_tokens = default_max_tokens
        # Only the gateway's own client marks which attempts sent anything (see
        # http_client.MarkingTransport); with another client every attempt counts as sent.
        self._marks_sends = isinstance(http, http_client.UpstreamClient) and isinstance(
            http.relay_transport, http_client.MarkingTransport)

    # -- before the upstream -------------------------------------------------

    def check_model(self, auth: KeyInfo, model: str, endpoint: str) -> Price:
        if not auth.allows_model(model):
            raise PermissionDenied(f"The model `{model}` is not allowed for this API key.", param="model",
                                   code="model_not_allowed")
        if not self.pool.serving(model, endpoint):
            what = "" if endpoint == CHAT else f" for {endpoint}"
            raise NotFound(f"The model `{model}` does not exist or no channel serves it{what}.", param="model")
        price = self.pool.price(model)
        if price is None:
            raise PermissionDenied(f"The model `{model}` has no price set, so it cannot be billed; "
                                   "ask the admin to set one.", param="model", code="model_price_not_set")
        return price

    def chat_body(self, body: dict[str, Any], adaptor: type[Adaptor] | Adaptor) -> dict[str, Any]:
        """A chat body as it goes to ``adaptor``: with an output limit, so none is unbounded."""
        return tokens.with_output_limit(body, self.default_max_tokens, adaptor.limit_field)

    def chat_output(self, body: dict[str, Any]) -> Callable[[type[Adaptor]], int]:
        """The output each adaptor may generate for chat ``body``, for :meth:`prepare`."""
        return lambda adaptor: adaptor.output_limit(self.chat_body(body, adaptor))

    async def prepare(self, auth: KeyInfo, *, endpoint: str, path: str, model: str, estimate: Usage,
                      calls: int = 1, client_ip: str, request_id: str | None, is_stream: bool,
                      output: Callable[[type[Adaptor]], int] | None = None) -> Call:
        """Check the model, the rate limit and the balance, and reserve the worst case.

        ``output`` gives the output tokens the request may generate on a channel
        of each adaptor type, after that adaptor's rewrites (a thinking budget
        raises it): the reservation covers the largest over the channels that
        could serve the request. Without it, ``estimate.completion_tokens`` is used.
        A priced model always holds at least one unit, so an empty key or account
        is refused even when the worst case cannot be known in advance.
        """
        price = self.check_model(auth, model, endpoint)
        await self.limiter.check(auth.token_id, auth.rpm_limit)
        call = Call(auth=auth, endpoint=endpoint, path=path, model=model, price=price,
                    request_id=request_id or new_request_id(), client_ip=client_ip, is_stream=is_stream)
        if output is not None:
            limits = [output(c.adaptor) for c in self.pool.serving(model, endpoint)]
            if limits:
                estimate = replace(estimate, completion_tokens=max(limits))
        units = price.cost(estimate, calls=calls)
        if not units and (price.input_per_million or price.output_per_million or price.per_call):
            units = MIN_HOLD
        if units:
            wanted = (auth.user_id, auth.token_id, units)
            hold = quota.HoldFor(self.process_id, call.request_id, auth.token_name[:64], path[:64], model[:128],
                                 client_ip[:64], is_stream)
            try:
                done, reservation = try_inline(
                    lambda cursor: quota.reserve_in(cursor, *wanted, token_unlimited=auth.unlimited, hold=hold))
                call.reservation = reservation if done else await run_write(
                    lambda: quota.reserve(*wanted, token_unlimited=auth.unlimited, hold=hold),
                    on_abandon=lambda reservation: self.ledger.add(Entry(row=self._row(
                        call, None, CLIENT_CLOSED, "the client went away before the request started"),
                        reservation=reservation, cost=0)))
            except quota.InsufficientQuota as exc:
                whose = "this API key's remaining quota" if exc.which == "token" else "your account balance"
                raise InsufficientQuotaError(
                    f"This request may cost up to {format_usd(units)}, more than {whose} covers. "
                    "Top up, raise the key's limit, or lower max_tokens.") from None
        else:
            # A free model: nothing to hold, but the key's spend is still counted.
            call.reservation = quota.reserve_in(None, auth.user_id, auth.token_id, 0, token_unlimited=auth.unlimited)
        return call

    # -- the upstream ----------------------------------------------------------

    async def failover(self, call: Call, attempt: Callable[[Adaptor, str], Awaitable[T]]) -> T:
        """Run ``attempt`` on channels in turn until one works; never the same channel twice."""
        tried: list[int] = []
        last: UpstreamFailure | None = None
        while len(tried) < MAX_ATTEMPTS:
            channel = self.pool.pick(call.model, call.endpoint, tried)
            if channel is None:
                break
            tried.append(channel.id)
            call.channel = channel
            call.upstream_model = channel.model_mapping.get(call.model, call.model)
            adaptor = channel.adaptor_for(self.http)
            call.reached_upstream = True
            sending = http_client.Attempt()
            marking = http_client.current_attempt.set(sending)
            try:
                return await attempt(adaptor, call.upstream_model)
            except UpstreamFailure as failure:
                last = failure
                self.note_failure(channel, call.model, failure)
                if failure.kind is FailureKind.CLIENT:
                    call.reached_upstream = False  # refused, not served: providers do not bill it either
                    raise failure.to_gateway_error() from None
            finally:
                http_client.current_attempt.reset(marking)
                if self._marks_sends and not sending.sent:
                    call.reached_upstream = False  # failed here before anything left: nothing to bill
        call.reached_upstream = False  # no channel produced anything billable
        if last is None:
            raise UpstreamUnavailable(f"No channel is available for the model `{call.model}` right now.")
        if last.is_rate_limit or last.kind is FailureKind.FATAL:
            raise UpstreamUnavailable(f"Every channel serving `{call.model}` is busy or unavailable; "
                                      "try again shortly.")
        raise last.to_gateway_error()

    async def serve(self, call: Call, attempt: Callable[[Adaptor, str], Awaitable[T]], *,
                    cut_usage: Callable[[], Usage] | None = None) -> T:
        """:meth:`failover`, and when no channel answers, log the call as failed (nothing is billed).

        Cancelled (the client hung up) after the request reached an upstream, the
        call is billed ``cut_usage()`` (counted in a worker thread: the prompt),
        as a stream cut before its first token is; without it, nothing.
        """
        try:
            return await self.failover(call, attempt)
        except asyncio.CancelledError:
            usage = None
            if cut_usage is not None and call.reached_upstream:
                with anyio.CancelScope(shield=True):
                    usage = await anyio.to_thread.run_sync(cut_usage)
            self.finish(call, usage, status=CLIENT_CLOSED, error="the client went away before the answer")
            raise
        except BaseException as exc:
            self.finish(call, None, status=exc.status if isinstance(exc, GatewayError) else CLIENT_CLOSED,
                        error=exc.message if isinstance(exc, GatewayError) else type(exc).__name__)
            raise

    def note_failure(self, channel: ChannelInfo, model: str, failure: UpstreamFailure) -> None:
        detail = f"{model}: {failure.status or 'network'} {failure.message}"[:1000]
        if failure.kind is FailureKind.FATAL:
            self.pool.drop(channel.id)
            self.ledger.later(lambda: disable_channel(channel.id, detail))
        elif failure.kind is FailureKind.RETRY:
            self.pool.suspend(channel.id, model, rate_limited=failure.is_rate_limit, retry_after=failure.retry_after)
            self.ledger.later(lambda: record_error(channel.id, detail))

    # -- after -------------------------------------------------------------------

    def finish(self, call: Call, usage: Usage | None, *, status: int = 200, error: str = "", calls: int = 1) -> int:
        """Queue the settlement and the log row; returns the cost charged (in units)."""
        if call.finished:
            return 0
        call.finished = True
        cost = call.price.cost(usage, calls=calls) if usage is not None and call.reached_upstream else 0
        row = self._row(call, usage, status, error)
        self.ledger.add(Entry(row=row, reservation=call.reservation, cost=cost))
        return cost

    async def finish_translated(self, call: Call, usage: Usage | None, body: dict[str, Any], texts: list[str], *,
                                complete: bool, status: int = 200, error: str = "") -> int:
        """:meth:`finish` for a stream relayed in another format (Messages, Gemini's own).

        The upstream's usage is billed when it reported all of it; a stream cut
        before that (or reporting nothing) is billed for what reached the client,
        counted here from the chat ``body`` and the ``texts`` sent, at least.
        """
        if usage is None or not complete or (usage.prompt_tokens == 0 and usage.completion_tokens == 0):
            counted = await anyio.to_thread.run_sync(lambda: Usage(
                prompt_tokens=tokens.count_chat_prompt(body), completion_tokens=sum(tokens.count(t) for t in texts)))
            usage = counted if usage is None else usage.covering(counted)
        return self.finish(call, usage, status=status, error=error)

    @staticmethod
    def _row(call: Call, usage: Usage | None, status: int, error: str) -> dict[str, Any]:
        usage = usage or Usage()
        return {
            "request_id": call.request_id, "kind": "relay", "user_id": call.auth.user_id,
            "token_id": call.auth.token_id, "token_name": call.auth.token_name[:64],
            "channel_id": call.channel.id if call.channel else None, "endpoint": call.path[:64],
            "model": call.model[:128], "upstream_model": call.upstream_model[:128],
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens, "quota": 0,
            "latency_ms": int((time.monotonic() - call.started) * 1000), "ttft_ms": call.ttft_ms,
            "is_stream": call.is_stream, "status_code": status, "error": error[:2000],
            "client_ip": call.client_ip[:64],
        }

    # -- non-chat endpoints -----------------------------------------------------

    async def call_endpoint(self, call: Call, *, body: dict[str, Any] | None, raw: bytes | None,
                            content_type: str,
                            encode: Callable[[str], tuple[bytes, str]] | None = None) -> ForwardResult:
        """Relay an embeddings/completions/images/audio/moderations request (billed by the caller).

        ``encode``, given the channel's name for the model, builds the body and its
        content type for that attempt (a multipart form naming the mapped model).
        """

        async def attempt(adaptor: Adaptor, upstream_model: str) -> ForwardResult:
            if call.endpoint == EMBEDDINGS and body is not None:
                result = await adaptor.embed(JSONRequest(body={**body, "model": upstream_model}, model=call.model,
                                                         upstream_model=upstream_model, request_id=call.request_id))
                return ForwardResult(status=200, content=json.dumps(result.body).encode(),
                                     content_type="application/json", usage=result.usage)
            kind = content_type
            if encode is not None:
                content, kind = encode(upstream_model)
            else:
                content = raw if raw is not None else json.dumps({**(body or {}), "model": upstream_model}).encode()
            return await adaptor.forward(ForwardRequest(
                endpoint=call.endpoint, path=call.path.removeprefix("/v1"), content=content,
                content_type=kind, model=call.model, upstream_model=upstream_model,
                request_id=call.request_id))

        return await self.serve(call, attempt)


class ChatStream:
    """An async context manager over one streamed chat completion.

    ``__aenter__`` validates, reserves quota and opens the upstream stream up to
    its first chunk, failing over between channels; it raises ``GatewayError``
    when none works (nothing is billed then). Iterating yields OpenAI
    ``chat.completion.chunk`` dicts; :meth:`frames` yields the same stream as
    the client's SSE bytes instead. A failure after the first chunk raises
    ``UpstreamError`` from the iteration. ``__aexit__`` closes the upstream
    (cancelling it if still running), settles to what was generated (at least
    the prompt) and queues the log row. After the block these are set:
    """

    request_id: str
    model: str  # as the client asked
    usage: Usage | None  # None only if the request never reached an upstream
    cost_quota: int  # units charged (settling may take less if the balance ran dry)
    finish_reason: str | None  # "stop", "length", "tool_calls"...; None when cut short
    error: str  # what went wrong, "" when nothing did

    def __init__(self, relay: Relay, auth: KeyInfo, body: dict[str, Any], *, client_ip: str = "",
                 request_id: str | None = None, path: str = "/v1/chat/completions", kind: str = CHAT,
                 raw: bool = False) -> None:
        self._relay = relay
        self._kind = kind  # CHAT, or COMPLETIONS for a legacy text completion stream
        # raw: the caller reads frames(); an upstream speaking OpenAI's SSE is then
        # relayed as its own bytes, and only the chunks billing needs are parsed.
        self._raw = raw
        self._auth = auth
        self._body = body
        self._client_ip = client_ip
        self._path = path
        self.request_id = request_id or new_request_id()
        self.model = body.get("model") if isinstance(body.get("model"), str) else ""
        self.usage = None
        self.cost_quota = 0
        self.finish_reason = None
        self.error = ""
        self._call: Call | None = None
        self._upstream: AsyncIterator[Any] | None = None
        self._upstream_raw = False  # the upstream yields lists of payload bytes, not dicts
        self._first: Any = None  # the first chunk (dict), or the first frames (bytes) when raw
        self._texts: list[str] = []
        self._unread: list[bytes] = []  # payloads relayed unparsed: read only to count tokens
        self._completed = False
        self._usage_sent = False
        self._include_usage = wants_usage(body)
        self._last_chunk: dict[str, Any] | None = None
        self._next_checkpoint = float("inf")  # set once the stream is open, if it holds anything
        self._prompt_tokens: int | None = None  # counted at the first checkpoint, reused when settling
        self._counted = (0, 0, 0)  # texts and unread payloads counted so far, and their tokens

    async def __aenter__(self) -> ChatStream:
        output = None
        if self._kind == COMPLETIONS:
            self.model = validate_completion(self._body)
            # 16 output tokens is what OpenAI's completions default to (and enforce).
            estimate = Usage(prompt_tokens=tokens.estimate_input(self._body.get("prompt")),
                             completion_tokens=tokens.max_output(self._body, default=16))
        else:
            self.model = validate_chat(self._body)
            estimate = Usage(prompt_tokens=tokens.estimate_chat_prompt(self._body))
            output = self._relay.chat_output(self._body)
        call = self._call = await self._relay.prepare(
            self._auth, endpoint=self._kind, path=self._path, model=self.model, estimate=estimate,
            client_ip=self._client_ip, request_id=self.request_id, is_stream=True, output=output)
        try:
            self._upstream, self._first = await self._relay.failover(call, self._open)
        except BaseException as exc:
            self.error = exc.message if isinstance(exc, GatewayError) else type(exc).__name__
            status = exc.status if isinstance(exc, GatewayError) else CLIENT_CLOSED
            with anyio.CancelScope(shield=True):
                await self._settle(status)
            raise
        call.mark_first_token()
        if call.reservation is not None and call.reservation.hold_id is not None:
            self._next_checkpoint = time.monotonic() + CHECKPOINT_SECONDS
        return self

    async def _checkpoint(self) -> None:
        """Record on the hold what has been generated so far (the prompt, and the output counted locally)."""
        call = self._call
        assert call is not None and call.reservation is not None and call.reservation.hold_id is not None
        self._next_checkpoint = time.monotonic() + CHECKPOINT_SECONDS
        texts, unread, completion = self._counted
        # Only what arrived since the last checkpoint is counted, in a worker thread (not on the event loop).
        new_texts, new_unread = self._texts[texts:], self._unread[unread:]
        self._prompt_tokens, added = await self._count(new_texts, new_unread)
        completion += added
        self._counted = (texts + len(new_texts), unread + len(new_unread), completion)
        usage = Usage(prompt_tokens=self._prompt_tokens, completion_tokens=completion)
        if self.usage is not None:
            usage = self.usage.covering(usage)
        self._relay.ledger.checkpoint(call.reservation.hold_id, call.price.cost(usage), usage.prompt_tokens,
                                      usage.completion_tokens, call.channel.id if call.channel else None)

    def _count_prompt(self) -> int:
        if self._kind == COMPLETIONS:
            return tokens.count_input(self._body.get("prompt"))
        return tokens.count_chat_prompt(self._body)

    async def _open(self, adaptor: Adaptor, upstream_model: str) -> tuple[AsyncIterator[Any], Any]:
        """Open the stream on one channel and read up to its first chunk (failures so far fail over)."""
        body = {**self._body, "model": upstream_model}
        request: ChatRequest | JSONRequest
        if self._kind == CHAT:
            body = self._relay.chat_body(body, adaptor)
        if self._kind == COMPLETIONS:
            request = JSONRequest(body=body, model=self.model, upstream_model=upstream_model,
                                  request_id=self.request_id)
        else:
            request = ChatRequest(body=body, model=self.model, upstream_model=upstream_model,
                                  request_id=self.request_id)
        self._upstream_raw = self._raw and adaptor.raw_sse
        if self._upstream_raw:
            upstream: AsyncIterator[Any] = adaptor.stream_raw(request, self._kind)
        elif self._kind == COMPLETIONS:
            upstream = adaptor.stream_completion(request)  # type: ignore[arg-type]
        else:
            upstream = adaptor.stream(request)  # type: ignore[arg-type]
        try:
            while True:
                first = await upstream.__anext__()
                if not self._upstream_raw:
                    return upstream, first
                frames = self._accept_raw(first)
                if frames:
                    return upstream, frames
        except StopAsyncIteration:
            return upstream, None
        except BaseException:
            await upstream.aclose()  # type: ignore[attr-defined]
            raise

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        if self._upstream is None:
            raise RuntimeError("use `async with gateway.chat(...) as stream` before iterating")
        if self._upstream_raw:
            raise RuntimeError("a raw stream is read with frames()")
        if self._first is not None:
            chunk = self._accept(self._first)
            self._first = None
            if chunk is not None:
                yield chunk
        try:
            async for raw in self._upstream:
                chunk = self._accept(raw)
                if chunk is not None:
                    yield chunk
                if time.monotonic() >= self._next_checkpoint:
                    await self._checkpoint()
        except UpstreamFailure as failure:
            self.error = failure.message
            raise UpstreamError(f"The upstream failed mid-stream: {failure.message}") from None
        self._completed = True
        tail = await self._usage_tail()
        if tail is not None:
            yield tail

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream as the client's SSE bytes (``data: {...}\\n\\n`` events), without ``[DONE]``."""
        if not self._upstream_raw:
            async for chunk in self:
                yield b"data: " + encode_chunk(chunk) + b"\n\n"
            return
        if self._upstream is None:
            raise RuntimeError("use `async with gateway.chat(...) as stream` before iterating")
        if self._first:
            first, self._first = self._first, None
            yield first
        # The same loop as __aiter__'s, written out again: sharing it would cost every read
        # one more async generator layer on the gateway's hottest path.
        try:
            async for payloads in self._upstream:
                frames = self._accept_raw(payloads)
                if frames:
                    yield frames
                if time.monotonic() >= self._next_checkpoint:
                    await self._checkpoint()
        except UpstreamFailure as failure:
            self.error = failure.message
            raise UpstreamError(f"The upstream failed mid-stream: {failure.message}") from None
        self._completed = True
        tail = await self._usage_tail()
        if tail is not None:
            yield b"data: " + encode_chunk(tail) + b"\n\n"

    def _accept_raw(self, payloads: list[bytes]) -> bytes:
        """Frame one read's payloads for the client, parsing only those billing must read."""
        kept = []
        for data in payloads:
            plain = plain_payload(data, self._include_usage)
            if plain is not None:
                self._unread.append(data)
                kept.append(plain)
                continue
            parsed = parse_payload(data)
            chunk = self._accept(RawChunk(parsed, data))
            if chunk is None:
                continue
            if type(chunk) is RawChunk:
                kept.append(data)
                continue
            # _accept only dropped OpenAI's "usage": null: cutting it from the bytes is cheaper than re-encoding.
            stripped = without_null_usage(data) if parsed.get("usage") is None else None
            kept.append(stripped if stripped is not None else encode_chunk(chunk))
        return b"data: " + b"\n\ndata: ".join(kept) + b"\n\n" if kept else b""

    async def _usage_tail(self) -> dict[str, Any] | None:
        """The usage chunk a client asked for and the upstream did not send; None when not needed."""
        if not self._include_usage or self._usage_sent:
            return None
        usage = self.usage or await self._count_locally()
        self.usage = usage
        last = self._last_chunk
        if last is None and self._unread:
            last = parse_payload(self._unread[-1])
        last = last or {}
        return {"id": last.get("id", "chatcmpl-" + self.request_id),
                "object": "text_completion" if self._kind == COMPLETIONS else "chat.completion.chunk",
                "created": last.get("created", int(time.time())), "model": last.get("model", self.model),
                "choices": [], "usage": usage.to_openai()}

    def _accept(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """Record what a chunk says (usage, finish, text); return it as the client should see it."""
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
        choices = chunk.get("choices")
        if choices:
            self._last_chunk = chunk
            for choice in choices:
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
            self._texts.extend(chunk_texts(chunk))
        if self._include_usage:
            if usage:
                self._usage_sent = True
            return chunk
        if not choices:
            return None  # the usage-only chunk the client did not ask for
        if "usage" in chunk:
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return chunk

    async def _count_locally(self) -> Usage:
        prompt, completion = await self._count(list(self._texts), list(self._unread))
        return Usage(prompt_tokens=prompt, completion_tokens=completion)

    async def _count(self, texts: list[str], unread: list[bytes]) -> tuple[int, int]:
        """The prompt's tokens (counted once per stream) and those of ``texts`` and ``unread``, in a worker thread."""
        known = self._prompt_tokens

        def count() -> tuple[int, int]:
            pieces = texts + [t for data in unread for t in chunk_texts(parse_payload(data))]
            prompt = known if known is not None else self._count_prompt()
            return prompt, sum(tokens.count(t) for t in pieces)

        return await anyio.to_thread.run_sync(count)

    async def _settle(self, status: int) -> None:
        call = self._call
        if call is None or call.finished:
            return
        if call.reached_upstream and self.usage is None:
            self.usage = await self._count_locally()
        elif call.reached_upstream and not self._completed:
            # Cut short: what the upstream reported so far may not include what it generated since.
            self.usage = self.usage.covering(await self._count_locally())
        self.cost_quota = self._relay.finish(call, self.usage, status=status, error=self.error)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        with anyio.CancelScope(shield=True):
            if self._upstream is not None:
                upstream, self._upstream = self._upstream, None
                try:
                    await upstream.aclose()  # type: ignore[attr-defined]
                except Exception:  # the upstream is going away either way
                    pass
            if self._completed and not self.error:
                status = 200
            elif self.error:
                status = UpstreamError.status
            else:
                status = CLIENT_CLOSED
                if not self.error:
                    self.error = "the client closed the stream before it ended"
            await self._settle(status)


def encode_chunk(chunk: Any) -> bytes:
    """A chunk's JSON bytes; an upstream's own text when the chunk is unchanged."""
    if type(chunk) is RawChunk:
        raw = chunk.raw
        return raw if isinstance(raw, bytes) else raw.encode()
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()


def chunk_texts(chunk: dict[str, Any]) -> list[str]:
    """The generated text of a chunk (content, reasoning, refusal, tool calls), for counting tokens."""
    texts = []
    for choice in chunk.get("choices") or ():
        if isinstance(choice.get("text"), str) and choice["text"]:
            texts.append(choice["text"])  # a legacy completion's piece
        delta = choice.get("delta") or {}
        for name in ("content", "reasoning_content", "refusal"):
            text = delta.get(name)
            if text:
                texts.append(text)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            texts.append((function.get("name") or "") + (function.get("arguments") or ""))
    return texts


_NULL_USAGE = (b'"usage":null', b'"usage": null')
_NULL_FINISH = (b'"finish_reason":null', b'"finish_reason": null')


def plain_payload(data: bytes, include_usage: bool) -> bytes | None:
    """``data`` as the client should get it, when nothing in it matters to billing; else None.

    Byte tests, not parsing: a quote inside a JSON string is escaped, so
    ``"usage"`` can only be a key. Anything unusual (a finish reason, a usage
    object, a chunk without choices, odd spacing) is left to the parser.
    """
    if b'"choices":[]' in data or b'"choices": []' in data:
        return None
    if not _only_nulls(data, b'"finish_reason"', _NULL_FINISH):
        return None
    if b'"usage"' not in data or include_usage and _only_nulls(data, b'"usage"', _NULL_USAGE):
        return data  # with usage asked for, OpenAI's own "usage": null is on every chunk
    return without_null_usage(data)


def without_null_usage(data: bytes) -> bytes | None:
    """``data`` with OpenAI's ``"usage": null`` cut out; None when it carries any other usage."""
    if not _only_nulls(data, b'"usage"', _NULL_USAGE):
        return None
    stripped = data.replace(b',"usage":null', b"").replace(b', "usage": null', b"")
    return stripped if b'"usage"' not in stripped else None


def _only_nulls(data: bytes, key: bytes, nulls: tuple[bytes, bytes]) -> bool:
    """Whether every ``key`` in ``data`` is followed by null (compact spelling counted first)."""
    total = data.count(key)
    if not total:
        return True
    compact = data.count(nulls[0])
    return total == compact or total == compact + data.count(nulls[1])
