"""The gateway's HTTP endpoints, each path with and without ``/v1``.

Every response carries ``X-Request-Id``; every error is OpenAI-shaped
(:func:`kernel.errors.error_response`). Other request formats (Claude's
``/v1/messages``) plug in through :data:`EXTRA_ROUTES`: a function from the
:class:`~gateway.service.Gateway` to its routes, one line each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from billing import tokens
from gateway import validation
from gateway.adaptors.base import (
    COMPLETIONS,
    EMBEDDINGS,
    IMAGES,
    MODERATIONS,
    SPEECH,
    TRANSCRIPTIONS,
    Usage,
)
from gateway.auth import KeyInfo, client_ip, request_key
from gateway.formats import gemini as gemini_native
from gateway.formats import messages as claude_messages
from gateway.http.disconnect import DisconnectWatch, while_connected
from gateway.http.multipart import parse_form
from gateway.relay import ChatStream, encode_chunk, new_request_id
from gateway.validation import parse_json, read_body
from kernel.errors import BadRequest, GatewayError, MethodNotAllowed, NotFound, error_response
from kernel.money import UNITS_PER_USD

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger("permachat.gateway")

Handler = Callable[[Request, str], Awaitable[Response]]

# Functions (gateway) -> routes for other request formats; add one line per format.
EXTRA_ROUTES: list[Callable[[Gateway], list[BaseRoute]]] = [claude_messages.routes, gemini_native.routes]


def with_request_id(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Give the handler a request id, put it on the response, render errors as OpenAI does."""

    @functools.wraps(fn)
    async def handler(request: Request) -> Response:
        request_id = new_request_id()
        try:
            response = await fn(request, request_id)
        except GatewayError as exc:
            return error_response(exc, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            err = GatewayError("The gateway failed to handle this request; the error was logged.")
            return error_response(err, request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    return handler


async def open_stream(request: Request, stream: ChatStream, request_id: str) -> Response:
    """Open ``stream`` up to its first chunk (a hang-up meanwhile cancels it), as the response to send."""
    watch = DisconnectWatch(request.receive)
    try:
        await while_connected(watch, stream.__aenter__())
    except BaseException:
        watch.stop()
        raise
    return _AsResponse(ChatEventStream(stream, request_id, watch))


class ChatEventStream:
    """A chat stream as OpenAI frames it (``data: {...}\\n\\n`` ... ``data: [DONE]\\n\\n``).

    The stream is already open (errors before the first chunk were answered as
    JSON). Each read from the upstream goes out in one write. A client
    disconnect cancels the loop at once; ``__aexit__`` then closes the upstream
    and bills what was generated.
    """

    ping_seconds = 15.0

    def __init__(self, stream: ChatStream, request_id: str, watch: DisconnectWatch) -> None:
        self.stream = stream
        self.watch = watch  # already watching: it saw the stream opened
        self.headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"), (b"x-request-id", request_id.encode())]
        self._last_write = 0.0
        self._pinger: asyncio.TimerHandle | None = None
        self._ping: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The request's one watch task notices the disconnect and a timer schedules
        # pings, rather than an anyio task group: setting one up and cancelling it
        # cost more than the rest of relaying a short stream.
        loop = asyncio.get_running_loop()
        relaying = anyio.CancelScope()
        watcher = self.watch
        watcher.on_gone(relaying.cancel)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            self._last_write = loop.time()
            self._pinger = loop.call_at(self._last_write + self.ping_seconds, self._ping_due, loop, send)
            with relaying:
                try:
                    async for frames in self.stream.frames():
                        await send({"type": "http.response.body", "body": frames, "more_body": True})
                        self._last_write = loop.time()
                    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
                except GatewayError as exc:
                    await send({"type": "http.response.body", "body": b"data: " + encode_chunk(exc.body()) + b"\n\n",
                                "more_body": True})
            self._stop_background(watcher)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._stop_background(watcher)
            await self.stream.__aexit__(None, None, None)

    def _stop_background(self, watcher: DisconnectWatch) -> None:
        watcher.stop()
        if self._pinger is not None:
            self._pinger.cancel()
        if self._ping is not None:
            self._ping.cancel()

    def _ping_due(self, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        # A reasoning model can think for minutes before its first token; a
        # comment keeps proxies from timing the stream out.
        due = self._last_write + self.ping_seconds
        if loop.time() >= due and (self._ping is None or self._ping.done()):
            self._ping = loop.create_task(send({"type": "http.response.body", "body": b": ping\n\n",
                                                "more_body": True}))  # type: ignore[arg-type]
            self._last_write = loop.time()
            due = self._last_write + self.ping_seconds
        self._pinger = loop.call_at(due, self._ping_due, loop, send)


def build_routes(gw: Gateway) -> list[BaseRoute]:
    limit = gw.settings.max_body_bytes

    async def auth_of(request: Request) -> KeyInfo:
        return await gw.authenticate(request_key(request), client_ip(request))

    async def json_body(request: Request) -> dict[str, Any]:
        return parse_json(await read_body(request, limit))

    @with_request_id
    async def chat_completions(request: Request, request_id: str) -> Response:
        """OpenAI chat completions, streamed or not."""
        auth = await auth_of(request)
        body = await json_body(request)
        ip = client_ip(request)
        if body.get("stream") is True:
            stream = ChatStream(gw.relay, auth, body, client_ip=ip, request_id=request_id,
                                path=request.scope["path"], raw=True)
            return await open_stream(request, stream, request_id)
        # A client that hangs up while the model answers cancels the upstream call (billed the prompt).
        watch = DisconnectWatch(request.receive)
        try:
            data = await while_connected(watch, gw.complete(auth, body, client_ip=ip, request_id=request_id,
                                                            path=request.scope["path"]))
        finally:
            watch.stop()
        return Response(encode_chunk(data), media_type="application/json")

    def forwarder(endpoint: str, validate: Callable[[dict[str, Any]], str],
                  describe: Callable[[dict[str, Any]], tuple[Usage, int]],
                  usage_after: Callable[[dict[str, Any], Usage | None], Usage],
                  defaults: dict[str, Any] | None = None) -> Handler:
        async def handler(request: Request, request_id: str) -> Response:
            auth = await auth_of(request)
            body = {**(defaults or {}), **await json_body(request)}
            model = validate(body)
            if body.get("stream") and endpoint == COMPLETIONS:
                stream = ChatStream(gw.relay, auth, body, client_ip=client_ip(request), request_id=request_id,
                                    path=request.scope["path"], kind=COMPLETIONS, raw=True)
                return await open_stream(request, stream, request_id)
            if body.get("stream"):
                raise BadRequest(f"Streaming is not supported on {request.scope['path']}.", param="stream")
            estimate, calls = describe(body)
            call = await gw.relay.prepare(auth, endpoint=endpoint, path=request.scope["path"], model=model,
                                          estimate=estimate, calls=calls, client_ip=client_ip(request),
                                          request_id=request_id, is_stream=False)
            result = await gw.relay.call_endpoint(call, body=body, raw=None, content_type="application/json")
            usage = usage_after(body, result.usage)
            gw.relay.finish(call, usage, calls=calls)
            return Response(result.content, media_type=result.content_type)

        return handler

    def prompt_of(field: str, default_max: int) -> Callable[[dict[str, Any]], tuple[Usage, int]]:
        def describe(body: dict[str, Any]) -> tuple[Usage, int]:
            prompt = tokens.estimate_input(body.get(field))
            out = tokens.max_output(body, default=default_max) if default_max else 0
            return Usage(prompt_tokens=prompt, completion_tokens=out), 1
        return describe

    def reported_or_estimated(field: str) -> Callable[[dict[str, Any], Usage | None], Usage]:
        def usage_after(body: dict[str, Any], usage: Usage | None) -> Usage:
            return usage or Usage(prompt_tokens=tokens.estimate_input(body.get(field)))
        return usage_after

    def images_describe(body: dict[str, Any]) -> tuple[Usage, int]:
        n = body.get("n") or 1  # validate_images checked it
        # Token-priced image models (gpt-image-1) bill each image's output tokens.
        return Usage(prompt_tokens=tokens.estimate_input(body.get("prompt")),
                     completion_tokens=tokens.IMAGE_OUTPUT_TOKENS * n), n

    def speech_usage(body: dict[str, Any], usage: Usage | None) -> Usage:
        # Speech is priced per character: the price's input rate applies to characters.
        return Usage(prompt_tokens=len(str(body.get("input") or "")))

    routes_json = {
        "/embeddings": forwarder(EMBEDDINGS, validation.validate_embeddings, prompt_of("input", 0),
                                 reported_or_estimated("input")),
        "/completions": forwarder(COMPLETIONS, validation.validate_completion, prompt_of("prompt", 16),
                                  reported_or_estimated("prompt")),
        "/moderations": forwarder(MODERATIONS, validation.validate_moderations, prompt_of("input", 0),
                                  reported_or_estimated("input"), defaults={"model": "omni-moderation-latest"}),
        "/images/generations": forwarder(IMAGES, validation.validate_images, images_describe,
                                         lambda body, usage: usage or Usage(), defaults={"model": "dall-e-2"}),
        "/audio/speech": forwarder(SPEECH, validation.validate_speech, lambda body: (speech_usage(body, None), 1),
                                   speech_usage),
    }

    @with_request_id
    async def transcriptions(request: Request, request_id: str) -> Response:
        """Speech to text: the form goes upstream as the gateway read it (see gateway.http.multipart)."""
        auth = await auth_of(request)
        raw = await read_body(request, limit)
        form = parse_form(raw, request.headers.get("content-type", ""))
        model = form.text("model") or ""
        if not model:
            raise BadRequest("you must provide a model parameter", param="model")
        if not form.has_file("file"):
            raise BadRequest("Missing required parameter: 'file'.", param="file")
        if (form.text("stream") or "").strip().lower() not in ("", "false"):
            # A streamed transcript would go back unread, its usage unbilled.
            raise BadRequest(f"Streaming is not supported on {request.scope['path']}.", param="stream")
        call = await gw.relay.prepare(auth, endpoint=TRANSCRIPTIONS, path=request.scope["path"], model=model,
                                      estimate=audio_estimate(len(raw)), client_ip=client_ip(request),
                                      request_id=request_id,
                                      is_stream=False)
        # Each attempt names the model as its channel does (a model mapping), nothing else changed.
        result = await gw.relay.call_endpoint(call, body=None, raw=None, content_type="",
                                              encode=lambda upstream: form.replacing("model", upstream).encode())
        gw.relay.finish(call, result.usage or Usage())
        return Response(result.content, media_type=result.content_type)

    @with_request_id
    async def list_models(request: Request, request_id: str) -> Response:
        """The models this key may use, as OpenAI lists them; as Anthropic does for an Anthropic client."""
        auth = await auth_of(request)
        entries = [e for e in await gw.model_catalog(auth) if e.allowed]
        if gemini_native.is_google_client(request.headers):
            return JSONResponse(gemini_native.models_list([e.id for e in entries]))
        if "anthropic-version" in request.headers:
            # Claude Code and the anthropic SDKs page through Anthropic's shape.
            data = [{"type": "model", "id": e.id, "display_name": e.id, "created_at": "1970-01-01T00:00:00Z"}
                    for e in entries]
            return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None})
        return JSONResponse({"object": "list", "data": [_model_object(e.id, e.channel_types) for e in entries]})

    @with_request_id
    async def get_model(request: Request, request_id: str) -> Response:
        """One model, if this key may use it."""
        auth = await auth_of(request)
        model_id = request.path_params["model"]
        for entry in await gw.model_catalog(auth):
            if entry.id == model_id and entry.allowed:
                return JSONResponse(_model_object(entry.id, entry.channel_types))
        raise NotFound(f"The model `{model_id}` does not exist or you do not have access to it.", param="model")

    @with_request_id
    async def subscription(request: Request, request_id: str) -> Response:
        """The key's limit in USD, as OpenAI's (and One-API's) billing endpoint reports it."""
        auth = await auth_of(request)
        balance = await gw.balance(auth)
        total = (balance.remaining + balance.used) / UNITS_PER_USD
        expires = int(auth.expires_at.replace(tzinfo=dt.UTC).timestamp()) if auth.expires_at else 0
        return JSONResponse({"object": "billing_subscription", "has_payment_method": True,
                             "soft_limit_usd": total, "hard_limit_usd": total, "system_hard_limit_usd": total,
                             "access_until": expires})

    @with_request_id
    async def usage(request: Request, request_id: str) -> Response:
        """What the key has spent, in US cents (``total_usage``), as OpenAI's billing endpoint reports it.

        With ``start_date`` and ``end_date`` (``YYYY-MM-DD``, the end excluded, as
        OpenAI's), only that period, with ``daily_costs`` per model: what NextChat
        and the other dashboards show as "used this month".
        """
        auth = await auth_of(request)
        period = usage_period(request.query_params.get("start_date"), request.query_params.get("end_date"))
        if period is None:
            balance = await gw.balance(auth)
            return JSONResponse({"object": "list", "total_usage": balance.used / UNITS_PER_USD * 100})
        days = await gw.spend_by_day(auth, *period)
        daily = [{"timestamp": int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()),
                  "line_items": [{"name": model, "cost": units / UNITS_PER_USD * 100}
                                 for model, units in sorted(models.items())]}
                 for day, models in sorted(days.items())]
        total = sum(sum(models.values()) for models in days.values())
        return JSONResponse({"object": "list", "daily_costs": daily, "total_usage": total / UNITS_PER_USD * 100})

    @with_request_id
    async def credit_grants(request: Request, request_id: str) -> Response:
        """OpenAI's old credit summary in USD (Cherry Studio, ChatBox and NextChat read it for the balance)."""
        auth = await auth_of(request)
        balance = await gw.balance(auth)
        granted = (balance.remaining + balance.used) / UNITS_PER_USD
        return JSONResponse({"object": "credit_summary", "total_granted": granted,
                             "total_used": balance.used / UNITS_PER_USD,
                             "total_available": balance.remaining / UNITS_PER_USD,
                             "grants": {"object": "list", "data": []}})

    table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/chat/completions", chat_completions, ["POST"]),
        ("/audio/transcriptions", transcriptions, ["POST"]),
        ("/models", list_models, ["GET"]),
        ("/models/{model:path}", get_model, ["GET"]),
        ("/dashboard/billing/subscription", subscription, ["GET"]),
        ("/dashboard/billing/usage", usage, ["GET"]),
        ("/dashboard/billing/credit_grants", credit_grants, ["GET"]),
    ]
    table += [(path, with_request_id(handler), ["POST"]) for path, handler in routes_json.items()]
    # Other formats first: Gemini's POST /v1/models/{model}:generateContent must win over the 405
    # that /v1/models/{model} answers for a POST.
    routes: list[BaseRoute] = [route for extra in EXTRA_ROUTES for route in extra(gw)]
    for path, endpoint, methods in table:
        # Without the second route a wrong method would fall through to the web
        # app's HTML 404; clients expect OpenAI's 405 error body.
        others = [m for m in ALL_METHODS if m not in methods and not (m == "HEAD" and "GET" in methods)]
        for prefix in ("/v1", ""):
            routes.append(Route(prefix + path, endpoint, methods=methods))
            routes.append(Route(prefix + path, _method_not_allowed(methods), methods=others))
    # Last: any other path under /v1 is the gateway's too, and answers as OpenAI does, not with
    # the web app's HTML 404 page and its session cookie (Codex prints whatever it gets).
    routes += [Route("/v1", _unknown_path, methods=list(ALL_METHODS)),
               Route("/v1/{rest:path}", _unknown_path, methods=list(ALL_METHODS))]
    return routes


ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _unknown_path(request: Request) -> Response:
    path = request.scope["path"]
    return error_response(NotFound(
        f"Unknown request URL: {request.method} {path[:200]}. Check the URL: the gateway serves "
        "/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/messages, /v1/models and the others "
        "listed on /docs.", code="unknown_url"), new_request_id())


def _method_not_allowed(allowed: list[str]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        response = error_response(MethodNotAllowed(
            f"{request.method} is not supported on {request.scope['path']}; use {' or '.join(allowed)}."),
            new_request_id())
        response.headers["Allow"] = ", ".join(allowed)
        return response

    return endpoint


MAX_USAGE_DAYS = 100  # as OpenAI's endpoint


def usage_period(start: str | None, end: str | None) -> tuple[dt.date, dt.date] | None:
    """The ``[start, end)`` of a usage query; None when neither is given. Raises BadRequest otherwise."""
    if not start and not end:
        return None
    if not start or not end:
        raise BadRequest("Give both start_date and end_date (YYYY-MM-DD), or neither.",
                         param="start_date" if not start else "end_date")
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError:
        raise BadRequest(f"start_date and end_date must be dates as YYYY-MM-DD (got {start[:20]!r}, {end[:20]!r}).",
                         param="start_date") from None
    if last <= first:
        raise BadRequest("end_date must come after start_date (the end date is not included).", param="end_date")
    if (last - first).days > MAX_USAGE_DAYS:
        raise BadRequest(f"The period may span at most {MAX_USAGE_DAYS} days.", param="end_date")
    return first, last


def audio_estimate(size: int) -> Usage:
    """An upper bound of a speech-to-text request's usage, from the size of its multipart body."""
    return Usage(prompt_tokens=size // tokens.AUDIO_BYTES_PER_TOKEN + 1,
                 completion_tokens=size // tokens.TRANSCRIPT_BYTES_PER_TOKEN + 1)


# The request formats every model is served in (new-api's names; Cherry Studio picks its API by them).
ENDPOINT_TYPES = ("openai", "anthropic")


def _model_object(model_id: str, owners: tuple[str, ...]) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owners[0] if owners else "permachat",
            "supported_endpoint_types": list(ENDPOINT_TYPES)}


class _AsResponse(Response):
    """Lets a plain ASGI app be returned from a Starlette endpoint (headers come from the app)."""

    def __init__(self, app: ChatEventStream) -> None:
        self.app = app
        self.background = None
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
