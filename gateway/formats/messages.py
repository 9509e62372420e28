"""Claude's own format, inbound: ``POST /v1/messages`` (and ``/messages``).

Claude-native clients (Claude Code, the ``anthropic`` SDK) send Anthropic
Messages requests with ``x-api-key`` or a Bearer key. The request goes through
the same relay as chat completions (reservation, failover, settlement, log row):
an ``anthropic`` channel gets the body as sent (only ``model`` mapped, so
thinking signatures, cache control and every other Anthropic field survive);
any other channel gets it translated to OpenAI chat and its answer translated
back, streaming included (Anthropic's SSE event sequence). Errors are
Anthropic-shaped: ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from billing import tokens
from gateway.adaptors.anthropic import AnthropicAdaptor, usage_of
from gateway.adaptors.base import CHAT, Adaptor, ChatRequest, FailureKind, UpstreamFailure, Usage
from gateway.auth import client_ip, request_key
from gateway.http.disconnect import DisconnectWatch, while_connected
from gateway.relay import CLIENT_CLOSED, Call, new_request_id
from gateway.validation import parse_json, read_body, validate_messages
from kernel.errors import BadRequest, GatewayError, UpstreamError

if TYPE_CHECKING:
    from gateway.service import Gateway

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal",
        "function_call": "tool_use"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}

Event = tuple[str, dict[str, Any]]


def error_body(exc: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(exc.status, "api_error"), "message": exc.message}}


def error_response(exc: GatewayError, request_id: str) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=exc.status, headers={**exc.headers, "request-id": request_id,
                                                                          "X-Request-Id": request_id})


# Anthropic request -> OpenAI chat ------------------------------------------------------------

def to_openai(body: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """An Anthropic Messages body as an OpenAI chat body, for channels that speak OpenAI.

    Not ``strict``: a block no OpenAI-speaking channel can take is kept as its
    JSON text instead of refused, for the estimate made before a channel is
    chosen (an Anthropic channel gets the body as sent, and takes it).
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required", param="model")
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise BadRequest("max_tokens: Field required (an integer)", param="max_tokens")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages: at least one message is required", param="messages")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, list):
        system = "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    for i, m in enumerate(raw_messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise BadRequest(f"messages.{i}.role: must be 'user', 'assistant' or 'system'", param=f"messages.{i}")
        if m["role"] == "system":  # mid-conversation instructions: a system message there, as OpenAI allows
            text = _text_of(m.get("content"))
            if text:
                messages.append({"role": "system", "content": text})
            continue
        messages.extend(_message(m["role"], m.get("content"), i, strict))
    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": body["max_tokens"]}
    if isinstance(body.get("stop_sequences"), list):
        out["stop"] = body["stop_sequences"]
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float):
            out[key] = body[key]
    tools = []
    for t in body.get("tools") or []:
        if not isinstance(t, dict) or not t.get("name") or t.get("type") not in (None, "custom"):
            raise BadRequest(f"tools: only custom tools can be relayed to this model, not {t.get('type')!r}",
                             param="tools")
        tools.append({"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                                       "parameters": t.get("input_schema") or {"type": "object"}}})
    if tools:
        out["tools"] = tools
        choice = body.get("tool_choice") or {}
        kind = choice.get("type")
        if kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool" and choice.get("name"):
            out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or 0)
        out["reasoning_effort"] = "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        out["user"] = user
    return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("text"))


def _document(block: dict[str, Any], i: int, strict: bool) -> dict[str, Any]:
    """A ``document`` block as an OpenAI part: its text, or a PDF as a ``file`` part."""
    source = block.get("source") or {}
    title = block.get("title")
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content":
        inner = source.get("content")
        text = inner if isinstance(inner, str) else _text_of(inner)
    elif kind == "base64" and source.get("media_type") == "application/pdf":
        return {"type": "file", "file": {"filename": f"{title or 'document'}.pdf",
                                         "file_data": f"data:application/pdf;base64,{source.get('data', '')}"}}
    elif strict:
        raise BadRequest(f"messages.{i}.content: a document from a {kind!r} source can only go to an Anthropic "
                         "channel; send its text, or a PDF as base64", param=f"messages.{i}")
    else:
        text = json.dumps(source)[:2000]
    return {"type": "text", "text": f"{title}\n\n{text}" if title else text}


def _search_result(block: dict[str, Any]) -> dict[str, Any]:
    """A ``search_result`` block (a RAG hit with its source) as text the model can cite from."""
    inner = block.get("content")
    text = inner if isinstance(inner, str) else _text_of(inner)
    head = " ".join(str(x) for x in (block.get("title"), block.get("source") and f"({block['source']})") if x)
    return {"type": "text", "text": f"{head}\n{text}" if head else text}


def _message(role: str, content: Any, i: int, strict: bool = True) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequest(f"messages.{i}.content: must be a string or a list of blocks", param=f"messages.{i}")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            url = (f"data:{source.get('media_type')};base64,{source.get('data')}" if source.get("type") == "base64"
                   else source.get("url"))
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
        elif kind == "tool_result":
            inner = block.get("content")
            text = inner if isinstance(inner, str) else "".join(
                b.get("text", "") for b in inner or [] if isinstance(b, dict))
            if block.get("is_error"):
                text = f"Error: {text}"
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # only Anthropic can read its own signed thinking back
        elif kind == "document":
            parts.append(_document(block, i, strict))
        elif kind == "search_result":
            parts.append(_search_result(block))
        elif strict:
            raise BadRequest(f"messages.{i}.content: blocks of type {kind!r} can only go to an Anthropic channel",
                             param=f"messages.{i}")
        else:
            parts.append({"type": "text", "text": json.dumps(block)[:2000]})
    out: list[dict[str, Any]] = list(results)  # tool results answer the previous turn, so they come first
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        if text or calls:
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            out.append(message)
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


# OpenAI answers -> Anthropic ------------------------------------------------------------------

def message_of(completion: dict[str, Any], model: str, usage: Usage | None) -> dict[str, Any]:
    choice = (completion.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if msg.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": msg["reasoning_content"], "signature": ""})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or []:
        try:
            args = json.loads((call.get("function") or {}).get("arguments") or "{}")
        except ValueError:
            args = {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:20],
                        "name": (call.get("function") or {}).get("name", ""), "input": args})
    return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None, "usage": _usage(usage)}


def _usage(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    written = usage.cache_write_tokens + usage.cache_write_1h_tokens
    return {"input_tokens": usage.prompt_tokens - usage.cached_tokens - written,
            "output_tokens": usage.completion_tokens, "cache_read_input_tokens": usage.cached_tokens,
            "cache_creation_input_tokens": written}


async def events_of(chunks: AsyncIterator[dict[str, Any]], model: str, state: dict[str, Any],
                    prompt_tokens: Awaitable[int] | None = None) -> AsyncIterator[Event]:
    """OpenAI chunks as Anthropic's stream events; ``state`` collects usage and text for billing.

    ``message_start`` carries the prompt's tokens as Anthropic's does (Claude Code
    tracks its context window by them): ``prompt_tokens``, counted while the
    upstream is asked, so it is sent once the upstream has answered.
    """
    try:
        first = await anext(chunks, None)  # the upstream has answered (or failed, and the relay fails over)
        counted = await prompt_tokens if prompt_tokens is not None else 0
        yield "message_start", {"type": "message_start", "message": {
            "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": _usage(Usage(prompt_tokens=counted, completion_tokens=0))}}
        index, open_kind, open_tool = -1, "", -1
        finish = "stop"
        async for chunk in _resumed(first, chunks):
            if chunk.get("usage"):
                state["usage"] = Usage.from_openai(chunk["usage"])
                state["final"] = True  # the OpenAI-speaking adaptors report usage once, at the end
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                finish = choice.get("finish_reason") or finish
                pieces: list[tuple[str, Any]] = []
                if delta.get("reasoning_content"):
                    pieces.append(("thinking", delta["reasoning_content"]))
                if delta.get("content"):
                    pieces.append(("text", delta["content"]))
                for call in delta.get("tool_calls") or []:
                    pieces.append(("tool", call))
                for kind, value in pieces:
                    starts_tool = kind == "tool" and value.get("index", 0) != open_tool
                    if kind != open_kind or starts_tool:
                        if index >= 0:
                            yield "content_block_stop", {"type": "content_block_stop", "index": index}
                        index, open_kind = index + 1, kind
                        block: dict[str, Any] = {"type": "text", "text": ""} if kind == "text" else (
                            {"type": "thinking", "thinking": ""} if kind == "thinking" else
                            {"type": "tool_use", "id": value.get("id") or "toolu_" + uuid.uuid4().hex[:20],
                             "name": (value.get("function") or {}).get("name", ""), "input": {}})
                        if kind == "tool":
                            open_tool = value.get("index", 0)
                        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
                    if kind == "text":
                        state["texts"].append(value)
                        delta_out = {"type": "text_delta", "text": value}
                    elif kind == "thinking":
                        state["texts"].append(value)
                        delta_out = {"type": "thinking_delta", "thinking": value}
                    else:
                        arguments = (value.get("function") or {}).get("arguments") or ""
                        if not arguments:
                            continue
                        state["texts"].append(arguments)
                        delta_out = {"type": "input_json_delta", "partial_json": arguments}
                    yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta_out}
        if index >= 0:
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        usage = state.get("usage")
        yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": STOP.get(finish, "end_turn"),
                                                                   "stop_sequence": None},
                                "usage": {"output_tokens": usage.completion_tokens if usage else 0,
                                          "input_tokens": usage.prompt_tokens if usage else 0}}
        yield "message_stop", {"type": "message_stop"}
    finally:
        # An async for does not close what it iterates: this closes the upstream's response.
        await chunks.aclose()  # type: ignore[attr-defined]


async def _resumed(first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# The endpoint --------------------------------------------------------------------------------

def routes(gw: Gateway) -> list[BaseRoute]:
    async def messages(request: Request) -> Response:
        """Anthropic's Messages API, relayed to any channel."""
        request_id = new_request_id()
        try:
            return await _handle(gw, request, request_id)
        except GatewayError as exc:
            return error_response(exc, request_id)

    async def count_tokens(request: Request) -> Response:
        """Anthropic's ``/v1/messages/count_tokens``: the request's input tokens, counted here, for free."""
        request_id = new_request_id()
        try:
            return await _count_tokens(gw, request, request_id)
        except GatewayError as exc:
            return error_response(exc, request_id)

    # Claude Code with ANTHROPIC_BASE_URL ending in /v1 asks for /v1/v1/messages: the same endpoint.
    paths = ("/v1/messages", "/messages", "/v1/v1/messages")
    return [*(Route(path, messages, methods=["POST"]) for path in paths),
            *(Route(path + "/count_tokens", count_tokens, methods=["POST"]) for path in paths)]


async def _count_tokens(gw: Gateway, request: Request, request_id: str) -> Response:
    """Counted with the gateway's tokenizer over the same translation a request would be billed on.

    Never a made-up zero: Claude Code compacts a conversation when this number
    nears the model's window, so an answer of 0 would let it overflow. The key
    must be one that may use the model; counting costs nothing.
    """
    auth = await gw.authenticate(request_key(request), client_ip(request))
    native = parse_json(await read_body(request, gw.settings.max_body_bytes))
    if isinstance(native, dict) and native.get("max_tokens") is None:
        native = {**native, "max_tokens": 1}  # count_tokens bodies carry none; the rest is checked as for a message
    body = to_openai(validate_messages(native))
    gw.relay.check_model(auth, body["model"], CHAT)
    counted = await anyio.to_thread.run_sync(lambda: tokens.count_chat_prompt(body))
    return JSONResponse({"input_tokens": counted}, headers={"request-id": request_id, "X-Request-Id": request_id})


async def _handle(gw: Gateway, request: Request, request_id: str) -> Response:
    ip = client_ip(request)
    auth = await gw.authenticate(request_key(request), ip)
    native = validate_messages(parse_json(await read_body(request, gw.settings.max_body_bytes)))
    versions = (request.headers.get("anthropic-version"), request.headers.get("anthropic-beta"))
    # For the estimate and the model; a channel that speaks OpenAI gets the strict translation.
    body = to_openai(native, strict=False)
    model = body["model"]
    translated: list[dict[str, Any]] = []

    def for_openai() -> dict[str, Any]:
        """The strict translation, made (and refused) only when an OpenAI-speaking channel is chosen."""
        if not translated:
            translated.append(to_openai(native))
        return translated[0]
    stream = native.get("stream") is True

    def output(adaptor: type[Adaptor]) -> int:
        # An Anthropic channel gets the client's own body, whose max_tokens bounds thinking too;
        # the others get the translation, which a thinking budget may raise (Bedrock).
        return native["max_tokens"] if issubclass(adaptor, AnthropicAdaptor) else adaptor.output_limit(body)

    call = await gw.relay.prepare(auth, endpoint=CHAT, path=request.scope["path"], model=model,
                                  estimate=Usage(prompt_tokens=tokens.estimate_chat_prompt(body)), output=output,
                                  client_ip=ip, request_id=request_id, is_stream=stream)
    headers = {"request-id": request_id, "X-Request-Id": request_id}
    if not stream:
        async def attempt(adaptor: Adaptor, upstream_model: str) -> tuple[dict[str, Any], Usage | None]:
            if isinstance(adaptor, AnthropicAdaptor):
                data = await adaptor.send_native({**native, "model": upstream_model}, adaptor.client_headers(*versions))
                return {**data, "model": model}, usage_of(data.get("usage"))
            result = await adaptor.complete(ChatRequest(body={**for_openai(), "model": upstream_model}, model=model,
                                                        upstream_model=upstream_model, request_id=request_id))
            return message_of(result.body, model, result.usage), result.usage

        message, usage = await gw.relay.serve(call, attempt)
        call.mark_first_token()
        if usage is None:
            texts = [b.get("text", "") for b in message.get("content") or []]
            # The tokenizer is slow (and loads on first use): keep it off the event loop.
            usage = await anyio.to_thread.run_sync(lambda: Usage(
                prompt_tokens=tokens.count_chat_prompt(body), completion_tokens=sum(map(tokens.count, texts))))
            message["usage"] = _usage(usage)
        gw.relay.finish(call, usage)
        return JSONResponse(message, headers=headers)

    state: dict[str, Any] = {"usage": None, "texts": [], "final": False}
    prompt_count: list[asyncio.Future[int]] = []  # counted once, on the first attempt that needs it

    def count_prompt() -> asyncio.Future[int]:
        if not prompt_count:
            prompt_count.append(asyncio.ensure_future(anyio.to_thread.run_sync(lambda: tokens.count_chat_prompt(body))))
        return prompt_count[0]

    async def open_stream(adaptor: Adaptor, upstream_model: str) -> tuple[AsyncIterator[Event], Event]:
        if isinstance(adaptor, AnthropicAdaptor):
            events = _native_events(adaptor.stream_native({**native, "model": upstream_model},
                                                          adaptor.client_headers(*versions)), model, state)
        else:
            chunks = adaptor.stream(ChatRequest(
                body={**for_openai(), "model": upstream_model, "stream": True, "stream_options": {"include_usage": True}},
                model=model, upstream_model=upstream_model, request_id=request_id))
            events = events_of(chunks, model, state, count_prompt())
        try:
            first = await events.__anext__()
            second = await events.__anext__()  # the upstream has answered once this arrives
        except BaseException:
            await events.aclose()  # type: ignore[attr-defined]
            raise
        return _prepend(events, [first, second]), first

    watch = DisconnectWatch(request.receive)
    try:
        events, _ = await while_connected(watch, gw.relay.serve(call, open_stream))
    finally:
        watch.stop()  # from here Starlette's StreamingResponse watches for the disconnect itself
    call.mark_first_token()
    return StreamingResponse(_relay_events(gw, call, body, events, state), media_type="text/event-stream",
                             headers=headers | {"Cache-Control": "no-cache"})


async def _prepend(events: AsyncIterator[Event], first: list[Event]) -> AsyncIterator[Event]:
    for event in first:
        yield event
    async for event in events:
        yield event


async def _native_events(events: AsyncIterator[tuple[str, dict[str, Any]]], model: str,
                         state: dict[str, Any]) -> AsyncIterator[Event]:
    """An Anthropic channel's own events, passed on; usage and text noted for billing."""
    try:
        usage: dict[str, Any] = {}
        async for event, data in events:
            if event == "message_start":
                usage.update((data.get("message") or {}).get("usage") or {})
                data = {**data, "message": {**data.get("message", {}), "model": model}}
            elif event == "message_delta":
                usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
                state["final"] = True  # message_start's usage counts the prompt and 1 output token; this, all
            elif event == "content_block_delta":
                delta = data.get("delta") or {}
                state["texts"].append(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or "")
            state["usage"] = usage_of(usage)
            yield event, data
    finally:
        # An async for does not close what it iterates: this closes the upstream's response.
        await events.aclose()  # type: ignore[attr-defined]


async def _relay_events(gw: Gateway, call: Call, body: dict[str, Any], events: AsyncIterator[Event],
                        state: dict[str, Any]) -> AsyncIterator[bytes]:
    status, error, done = 200, "", False
    try:
        async for event, data in events:
            yield _sse(event, data)
            done = done or event == "message_stop"
        if not done:
            raise UpstreamFailure("the upstream stream ended early", kind=FailureKind.RETRY)
    except (UpstreamFailure, UpstreamError) as exc:
        status, error = UpstreamError.status, str(getattr(exc, "message", exc))
        yield _sse("error", {"type": "error", "error": {"type": "api_error",
                                                        "message": f"The upstream failed mid-stream: {error}"}})
    finally:
        if not done and not error:
            status, error = CLIENT_CLOSED, "the client closed the stream before it ended"
        with anyio.CancelScope(shield=True):
            await events.aclose()  # type: ignore[attr-defined]
            await gw.relay.finish_translated(call, state.get("usage"), body, list(state["texts"]),
                                             complete=bool(state.get("final")), status=status, error=error)
