"""The chat's one async endpoint: ``GET /chat/stream/{ticket}``, a reply streamed over SSE.

Flask cannot stream (a2wsgi never tells it the client left), so the reply is
generated here, on the event loop, through the in-process gateway: billed,
limited and logged exactly like a ``/v1`` request.

- A Flask view creates the pending reply and renders it with a signed, one-shot
  *ticket* (itsdangerous) naming it; the message's ``stream_nonce`` is consumed
  by the first connection (:func:`conversations.claim_stream`), so a reconnect
  (the SSE extension's or the browser's own) never starts a second generation:
  it attaches to the running one, or receives the finished message.
- The generation runs as its own task and outlives the connection; the page
  only watches it. Watchers get the finished markdown blocks once (``block``,
  appended) and the unfinished tail (``tail``, replaced) at most every 100 ms,
  then the finished message (``final``, replacing the whole element, which has
  no ``sse-connect``) and ``done`` (``sse-close``).
- Another worker or replica (a reconnect, a second tab): with Redis, it follows
  the reply through the generating process's mirror (:mod:`webapp.chat.shared`);
  without, it shows what the database holds.
- Stop: the Flask view marks the message ``stopping`` and pokes the running
  generation (same process: at once; another worker: its one-second poll of the
  row). The generation leaves the gateway's stream, which cancels the upstream
  and bills what was generated; the partial reply is kept, marked stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth import client_ip
from kernel.db import run_sync
from kernel.errors import GatewayError, InsufficientQuotaError, RateLimited
from webapp.chat import conversations, free_tier
from webapp.markdown import LiveRender
from webapp.models import Message

log = logging.getLogger("permachat.chat")

TICK = 0.1  # seconds between page updates while a reply streams
STOP_POLL = 1.0  # how often a generation looks for a stop asked in another worker
# How often the text written so far is saved, so a crash or a reconnect served by
# another worker loses at most this much of a reply.
CHECKPOINT_SECONDS = 2.0
STOP_GRACE = 1.5  # after a stop, how long to wait for the next chunk before cutting the stream
START_MAX_AGE = 3600  # a ticket can start its generation within this many seconds


@dataclass(frozen=True)
class Ticket:
    message_id: int
    nonce: str
    token_id: int  # the key the reply is billed to
    free: bool  # the free tier's key: its caps apply
    lang: str


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="permachat.chat.stream")


def sign(secret: str, ticket: Ticket) -> str:
    return _serializer(secret).dumps({"m": ticket.message_id, "n": ticket.nonce, "t": ticket.token_id,
                                      "f": ticket.free, "l": ticket.lang})


def read(secret: str, value: str) -> tuple[Ticket, bool] | None:
    """The ticket and whether it may still start a generation; None when forged."""
    s = _serializer(secret)
    fresh = True
    try:
        data = s.loads(value, max_age=START_MAX_AGE)
    except SignatureExpired as exc:
        fresh = False
        try:
            data = s.load_payload(exc.payload)
        except BadSignature:
            return None
    except BadSignature:
        return None
    try:
        ticket = Ticket(int(data["m"]), str(data["n"]), int(data["t"]), bool(data["f"]), str(data["l"]))
    except (KeyError, TypeError, ValueError):
        return None
    return ticket, fresh


@dataclass
class Generation:
    """One reply being written, watched by any number of connections of this process."""

    message_id: int
    loop: asyncio.AbstractEventLoop
    text: str = ""
    version: int = 0
    done: bool = False
    stop_asked_at: float | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    scope: anyio.CancelScope | None = None
    task: asyncio.Task | None = None
    mirror: asyncio.Task | None = None  # its copy into Redis, for other workers (webapp.chat.shared)
    bus: Any = None  # the webapp.chat.shared.StreamBus it is mirrored on

    def request_stop(self) -> None:
        """Stop after the current chunk, or cut the stream if none comes soon (loop thread only)."""
        if self.stop_asked_at is None:
            self.stop_asked_at = time.monotonic()

    async def publish(self, *, done: bool = False) -> None:
        async with self.changed:
            self.version += 1
            self.done = self.done or done
            self.changed.notify_all()


# Running generations of this process, by message id.
GENERATIONS: dict[int, Generation] = {}


# At shutdown, how long running replies may go on before they are stopped (keeping what was written).
DRAIN_SECONDS = 3.0


async def drain(grace: float = DRAIN_SECONDS) -> None:
    """Finish or stop this event loop's running replies, each settled and logged, before the ledger closes.

    Generations run as tasks of their own (a reply goes on when its page
    closes), so the lifespan must wait for them: a reply still writing when the
    ledger closed kept its reservation for ever, with no log row.
    """
    loop = asyncio.get_running_loop()
    running = [g for g in list(GENERATIONS.values()) if g.loop is loop]
    tasks = [g.task for g in running if g.task is not None and not g.task.done()]
    mirrors = [g.mirror for g in running if g.mirror is not None and not g.mirror.done()]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()  # generate() keeps the text, marks the reply stopped and settles what was generated
        if pending:
            await asyncio.wait(pending, timeout=10)
    if mirrors:  # each writes "done" for the other workers' followers once its reply is finished
        await asyncio.wait(mirrors, timeout=2)


def stop_running(message_id: int, run_on_loop: Callable[[Callable[[], Any]], None]) -> None:
    """Poke a generation of this process to stop (called from a Flask thread)."""
    gen = GENERATIONS.get(message_id)
    if gen is not None:
        run_on_loop(gen.request_stop)


@dataclass
class Turn:
    """What one reply needs, read from the database before the request goes out."""

    body: dict[str, Any]
    model: str


def _prepare(ticket: Ticket) -> Turn:
    reply = Message.get_by_id(ticket.message_id)
    conv = reply.conversation
    history = conversations.history_for(conv, reply)
    config = free_tier.read_config() if ticket.free else None
    try:
        messages = conversations.build_messages(conv, history, max_context=config.max_context if config else None,
                                                allow_images=not ticket.free)
    except conversations.ChatError:
        raise FreeLimit("context") from None
    body: dict[str, Any] = {"model": conv.model, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}}
    if conv.temperature is not None:
        body["temperature"] = conv.temperature
    max_tokens = conv.max_tokens
    if config is not None:
        if conv.model not in config.models:
            raise FreeLimit("model")
        free_tier.refill_for_today(config)
        max_tokens = min(max_tokens or config.max_tokens, config.max_tokens)
    if max_tokens:
        body["max_tokens"] = max_tokens
    return Turn(body=body, model=conv.model)


class FreeLimit(Exception):
    """A free-tier limit stopped the turn; ``which`` names it for the page."""

    def __init__(self, which: str, retry_after: int | None = None) -> None:
        super().__init__(which)
        self.which = which
        self.retry_after = retry_after


def _finish(message_id: int, text: str, status: str, error: str, stream: Any) -> None:
    usage = getattr(stream, "usage", None)
    fields: dict[str, Any] = {"content": text, "status": status, "error": error[:2000], "stream_nonce": ""}
    if stream is not None:
        fields.update(prompt_tokens=usage.prompt_tokens if usage else 0,
                      completion_tokens=usage.completion_tokens if usage else 0,
                      cost_quota=int(getattr(stream, "cost_quota", 0) or 0))
    Message.update(**fields).where(Message.id == message_id).execute()


def _checkpoint(message_id: int, text: str) -> None:
    Message.update(content=text).where(
        (Message.id == message_id) & Message.status.in_(["streaming", "stopping"])).execute()


def _stop_asked_in_db(message_id: int) -> bool:
    return Message.select(Message.status).where(Message.id == message_id).scalar() == "stopping"


def error_text(exc: BaseException, free: bool) -> str:
    """What the page says when a reply could not be written (codes the template translates)."""
    if isinstance(exc, FreeLimit):
        return f"free:{exc.which}"
    if free and isinstance(exc, InsufficientQuotaError):
        return "free:budget"
    if isinstance(exc, RateLimited):
        return f"rate:{exc.retry_after}"
    if isinstance(exc, GatewayError):
        return exc.message
    return "The reply failed; please try again."


async def generate(gen: Generation, gw: Any, ticket: Ticket, client_ip: str) -> None:
    """Write one reply into its message row, publishing progress to the watchers."""
    status, error, stream = "done", "", None
    try:
        turn = await run_sync(lambda: _prepare(ticket))
        auth = await gw.auth_for_token(ticket.token_id, client_ip)
        async with gw.chat(auth, turn.body, client_ip=client_ip, request_id=uuid.uuid4().hex) as stream:
            watcher = asyncio.ensure_future(_watch_stop(gen))
            try:
                with anyio.CancelScope() as scope:
                    gen.scope = scope
                    async for chunk in stream:
                        for choice in chunk.get("choices") or ():
                            piece = (choice.get("delta") or {}).get("content")
                            if isinstance(piece, str) and piece:
                                gen.text += piece
                        await gen.publish()
                        if gen.stop_asked_at is not None:
                            break
            finally:
                watcher.cancel()
        if gen.stop_asked_at is not None:
            status = "stopped"
        elif getattr(stream, "finish_reason", None) == "length":
            error = "length"
    except asyncio.CancelledError:
        status = "stopped"  # the server is shutting down: keep what was written
        raise
    except Exception as exc:  # every failure ends as an error message on the page, never a hung reply
        if not isinstance(exc, GatewayError | FreeLimit):
            log.exception("chat generation %s failed", gen.message_id)
        status = "stopped" if gen.stop_asked_at is not None else "error"
        error = "" if status == "stopped" else error_text(exc, ticket.free)
    finally:
        with anyio.CancelScope(shield=True):
            text = gen.text
            await run_sync(lambda: _finish(gen.message_id, text, status, error, stream))
            if gen.bus is not None:
                with anyio.move_on_after(2):
                    await gen.bus.finished(gen)
            GENERATIONS.pop(gen.message_id, None)
            await gen.publish(done=True)


async def _watch_stop(gen: Generation) -> None:
    last_poll = 0.0
    last_save, saved = time.monotonic(), ""
    while True:
        await asyncio.sleep(0.2)
        now = time.monotonic()
        if now - last_save >= CHECKPOINT_SECONDS and gen.text != saved:
            last_save, saved = now, gen.text
            await run_sync(functools.partial(_checkpoint, gen.message_id, saved))
        if gen.stop_asked_at is None and now - last_poll >= STOP_POLL:
            last_poll = now
            if await run_sync(lambda: _stop_asked_in_db(gen.message_id)):
                gen.request_stop()
        if gen.stop_asked_at is not None and now - gen.stop_asked_at >= STOP_GRACE and gen.scope is not None:
            gen.scope.cancel()  # no chunk came to notice the stop: cut the upstream now
            return


def chat_routes(flask_app: Any) -> list[BaseRoute]:
    """The stream route, bound to the Flask app whose templates render the messages."""
    from webapp.chat.render import render_message

    secret = flask_app.config["SECRET_KEY"]

    async def final_event(message_id: int, lang: str, token_id: int, free: bool) -> ServerSentEvent:
        html = await run_sync(lambda: render_message(flask_app, message_id, lang, token_id=token_id, free=free))
        return ServerSentEvent(event="final", data=html)

    async def watch(gen: Generation, ticket: Ticket) -> AsyncIterator[ServerSentEvent]:
        renderer = LiveRender()
        seen = -1
        last = 0.0
        tick = TICK
        first = True
        while True:
            async with gen.changed:
                await gen.changed.wait_for(lambda seen=seen: gen.version != seen or gen.done)
            if gen.done:
                break
            wait = tick - (time.monotonic() - last)
            if wait > 0:
                await asyncio.sleep(wait)  # let chunks pile up: one page update per tick
            seen = gen.version
            text = gen.text
            began = time.monotonic()
            finished, tail = await anyio.to_thread.run_sync(renderer.update, text)
            # A huge unfinished block (a long code listing) is slow to re-render:
            # update less often rather than spend the whole CPU on it.
            tick = max(TICK, 2 * (time.monotonic() - began))
            if first:
                # A watcher that joins late replaces whatever the element showed.
                yield ServerSentEvent(event="snapshot", data=finished)
                first = False
            elif finished:
                yield ServerSentEvent(event="block", data=finished)
            yield ServerSentEvent(event="tail", data=tail)
            last = time.monotonic()
        yield await final_event(gen.message_id, ticket.lang, ticket.token_id, ticket.free)
        yield ServerSentEvent(event="done", data="")

    async def stream(request: Request) -> Response:
        """Start (once) or watch the generation of one reply, as server-sent events."""
        parsed = read(secret, request.path_params["ticket"])
        if parsed is None:
            return PlainTextResponse("This stream link is not valid.", status_code=404)
        ticket, fresh = parsed
        ip = client_ip(request)
        bus = getattr(request.app.state, "chat_bus", None)
        gen = GENERATIONS.get(ticket.message_id)
        following: asyncio.Task | None = None
        if gen is None and fresh and await run_sync(lambda: conversations.claim_stream(ticket.message_id,
                                                                                         ticket.nonce)):
            gw = getattr(request.app.state, "gateway", None)
            gen = Generation(ticket.message_id, asyncio.get_running_loop())
            GENERATIONS[ticket.message_id] = gen
            if gw is None:
                gen.task = asyncio.ensure_future(_fail(gen, "The gateway is not running."))
            else:
                gen.task = asyncio.ensure_future(generate(gen, gw, ticket, ip))
                if bus is not None:  # so that a reconnect or a tab on another worker can follow it
                    gen.bus = bus
                    gen.mirror = asyncio.ensure_future(bus.mirror(gen))
        elif gen is None and bus is not None and await bus.running(ticket.message_id):
            # Written by another worker or replica: follow its mirror as if it ran here.
            gen = Generation(ticket.message_id, asyncio.get_running_loop())
            following = asyncio.ensure_future(bus.follow(gen))

        async def events() -> AsyncIterator[ServerSentEvent]:
            if gen is not None:
                try:
                    async for event in watch(gen, ticket):
                        yield event
                finally:
                    if following is not None:
                        following.cancel()
                return
            # Finished, or running elsewhere: show what the database holds and close.
            with contextlib.suppress(Exception):
                await run_sync(lambda: _settle_orphan(ticket.message_id))
            yield await final_event(ticket.message_id, ticket.lang, ticket.token_id, ticket.free)
            yield ServerSentEvent(event="done", data="")

        return EventSourceResponse(events(), ping=15, sep="\n", send_timeout=30,
                                   headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return [Route("/chat/stream/{ticket}", stream, methods=["GET"], name="chat_stream")]


async def _fail(gen: Generation, message: str) -> None:
    await run_sync(lambda: _finish(gen.message_id, "", "error", message, None))
    GENERATIONS.pop(gen.message_id, None)
    await gen.publish(done=True)


ORPHAN_SECONDS = 600


def _settle_orphan(message_id: int) -> None:
    """A reply left ``streaming`` with no generation anywhere (a crash) is closed as stopped.

    With one worker a missing generation means it is gone; with several it may run
    in another worker, so only rows untouched for a while are closed.
    """
    row = Message.get_or_none(Message.id == message_id)
    if row is None or row.status not in ("streaming", "stopping"):
        return
    from kernel.models import utcnow

    if (utcnow() - row.created_at).total_seconds() > ORPHAN_SECONDS:
        Message.update(status="stopped").where(
            (Message.id == message_id) & Message.status.in_(["streaming", "stopping"])).execute()
