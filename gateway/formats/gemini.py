"""Gemini's own API (``/v1beta/models/{model}:generateContent``), for Google's SDKs and the Gemini CLI.

    POST /v1beta/models/{model}:generateContent
    POST /v1beta/models/{model}:streamGenerateContent?alt=sse
    GET  /v1beta/models

The key comes as ``x-goog-api-key`` or ``?key=``, as Google's clients send it.
A Gemini channel gets the request as sent (only the model named as the channel
names it); every other channel gets it translated to OpenAI chat and the answer
translated back. Reservation, failover, settlement and the log row are the
relay's, as for chat completions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from billing import tokens
from gateway.adaptors._chat import loads
from gateway.adaptors._sse import sse_events
from gateway.adaptors.base import (
    CHAT,
    Adaptor,
    ChatRequest,
    FailureKind,
    UpstreamFailure,
    Usage,
    transport_errors,
)
from gateway.adaptors.gemini import GeminiAdaptor, failure, usage_of
from gateway.auth import client_ip, request_key
from gateway.http.disconnect import DisconnectWatch, while_connected
from gateway.relay import CLIENT_CLOSED, Call, new_request_id
from gateway.validation import parse_json, read_body
from kernel.errors import BadRequest, GatewayError, UpstreamError

if TYPE_CHECKING:
    from gateway.service import Gateway

METHODS = ("generateContent", "streamGenerateContent")
FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_response(exc: GatewayError, request_id: str) -> JSONResponse:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    body = {"error": {"code": exc.status, "message": exc.message, "status": STATUS.get(exc.status, "INTERNAL")}}
    return JSONResponse(body, status_code=exc.status, headers=dict(exc.headers) | {"X-Request-Id": request_id})


# Gemini -> OpenAI chat -------------------------------------------------------------------------

def _text(parts: Any) -> str:
    return "".join(p.get("text", "") for p in parts or [] if isinstance(p, dict) and not p.get("thought"))


def to_openai(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """A ``generateContent`` body as an OpenAI chat body."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents: at least one content is required", param="contents")
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, dict) and _text(system.get("parts")):
        messages.append({"role": "system", "content": _text(system.get("parts"))})
    call_ids: dict[str, list[str]] = {}  # function name -> ids of its calls not yet answered
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            raise BadRequest(f"contents[{i}].parts: must be a list of parts", param=f"contents[{i}]")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise BadRequest(f"contents[{i}].role: must be 'user' or 'model'", param=f"contents[{i}].role")
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for part in content["parts"]:
            if not isinstance(part, dict):
                raise BadRequest(f"contents[{i}].parts: each part must be an object", param=f"contents[{i}]")
            if part.get("thought"):
                continue
            if "text" in part:
                parts.append({"type": "text", "text": str(part["text"])})
            elif "inlineData" in part or "inline_data" in part:
                data = part.get("inlineData") or part.get("inline_data") or {}
                mime = data.get("mimeType") or data.get("mime_type") or "application/octet-stream"
                parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data.get('data', '')}"}})
            elif "functionCall" in part or "function_call" in part:
                fc = part.get("functionCall") or part.get("function_call") or {}
                call_id = fc.get("id") or f"call_{fc.get('name', '')}_{i}_{len(calls)}"
                call_ids.setdefault(fc.get("name", ""), []).append(call_id)
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": fc.get("name", ""), "arguments": json.dumps(fc.get("args") or {})}})
            elif "functionResponse" in part or "function_response" in part:
                fr = part.get("functionResponse") or part.get("function_response") or {}
                waiting = call_ids.get(fr.get("name", "")) or []
                call_id = fr.get("id") or (waiting.pop(0) if waiting else f"call_{fr.get('name', '')}")
                messages.append({"role": "tool", "tool_call_id": call_id,
                                 "content": json.dumps(fr.get("response") or {}, ensure_ascii=False)})
            else:
                raise BadRequest(f"contents[{i}].parts: this part can only go to a Gemini channel: {sorted(part)}",
                                 param=f"contents[{i}]")
        if role == "model":
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            if text or calls:
                message: dict[str, Any] = {"role": "assistant", "content": text or None}
                if calls:
                    message["tool_calls"] = calls
                messages.append(message)
        elif parts:
            messages.append({"role": "user", "content": parts})
    out: dict[str, Any] = {"model": model, "messages": messages}
    config = body.get("generationConfig") or body.get("generation_config") or {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("max_tokens", "maxOutputTokens"),
                         ("stop", "stopSequences"), ("seed", "seed")):
        if config.get(theirs) is not None:
            out[ours] = config[theirs]
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if isinstance(schema, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    elif config.get("responseMimeType") == "application/json":
        out["response_format"] = {"type": "json_object"}
    tools = [{"type": "function", "function": {"name": f.get("name", ""), "description": f.get("description", ""),
                                               "parameters": f.get("parameters") or {"type": "object"}}}
             for t in body.get("tools") or [] if isinstance(t, dict)
             for f in t.get("functionDeclarations") or t.get("function_declarations") or []]
    if tools:
        out["tools"] = tools
        mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        if mode == "ANY":
            out["tool_choice"] = "required"
        elif mode == "NONE":
            out["tool_choice"] = "none"
    return out


# OpenAI chat -> Gemini -------------------------------------------------------------------------

def _usage_metadata(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    meta = {"promptTokenCount": usage.prompt_tokens, "candidatesTokenCount": usage.completion_tokens,
            "totalTokenCount": usage.total_tokens}
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    return meta


def _parts_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        parts.append({"text": message["reasoning_content"], "thought": True})
    if message.get("content"):
        parts.append({"text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            args = json.loads(function.get("arguments") or "{}")
        except ValueError:
            args = {}
        parts.append({"functionCall": {"name": function.get("name", ""), "args": args}})
    return parts


def models_list(ids: list[str]) -> dict[str, Any]:
    """Models as Gemini's ``models.list`` answers them."""
    return {"models": [{"name": f"models/{i}", "displayName": i, "supportedGenerationMethods": list(METHODS)}
                       for i in ids]}


def is_google_client(headers: Any) -> bool:
    """A request from one of Google's SDKs or the Gemini CLI (they name themselves in x-goog-api-client)."""
    return "x-goog-api-client" in headers or "x-goog-api-key" in headers


def response_of(completion: dict[str, Any], model: str, usage: Usage | None) -> dict[str, Any]:
    choice = (completion.get("choices") or [{}])[0]
    return {"candidates": [{"content": {"role": "model", "parts": _parts_of(choice.get("message") or {})},
                            "finishReason": FINISH.get(choice.get("finish_reason") or "stop", "STOP"), "index": 0}],
            "usageMetadata": _usage_metadata(usage), "modelVersion": model}


# The endpoints ---------------------------------------------------------------------------------

def routes(gw: Gateway) -> list[BaseRoute]:
    async def generate(request: Request) -> Response:
        """``models/{model}:generateContent`` and ``:streamGenerateContent``, relayed to any channel."""
        request_id = new_request_id()
        try:
            return await _generate(gw, request, request_id)
        except GatewayError as exc:
            return error_response(exc, request_id)

    async def list_models(request: Request) -> Response:
        """The key's models, as Gemini lists them."""
        request_id = new_request_id()
        try:
            auth = await gw.authenticate(request_key(request), client_ip(request))
            entries = [e for e in await gw.model_catalog(auth) if e.allowed]
        except GatewayError as exc:
            return error_response(exc, request_id)
        return JSONResponse(models_list([e.id for e in entries]), headers={"X-Request-Id": request_id})

    # Google's SDKs say v1beta or v1 by version; "{model}:{method}" takes the last colon's split.
    return [Route("/v1beta/models", list_models, methods=["GET"]),
            *(Route(prefix + "/models/{model}:{method}", generate, methods=["POST"]) for prefix in ("/v1beta", "/v1"))]


async def _generate(gw: Gateway, request: Request, request_id: str) -> Response:
    model, method = request.path_params["model"], request.path_params["method"]
    if method not in METHODS:
        raise BadRequest(f"Unknown method {method[:100]!r}: use models/MODEL:generateContent "
                         "or models/MODEL:streamGenerateContent.")
    ip = client_ip(request)
    auth = await gw.authenticate(request_key(request), ip)
    native = parse_json(await read_body(request, gw.settings.max_body_bytes))
    if not isinstance(native, dict):
        raise BadRequest("The request body must be a JSON object.")
    body = to_openai(model, native)
    stream = method == "streamGenerateContent"
    call = await gw.relay.prepare(auth, endpoint=CHAT, path=request.scope["path"][:64], model=model,
                                  estimate=Usage(prompt_tokens=tokens.estimate_chat_prompt(body)),
                                  output=lambda adaptor: adaptor.output_limit(body), client_ip=ip,
                                  request_id=request_id, is_stream=stream)
    headers = {"X-Request-Id": request_id}
    if not stream:
        async def attempt(adaptor: Adaptor, upstream_model: str) -> tuple[dict[str, Any], Usage | None]:
            if isinstance(adaptor, GeminiAdaptor):  # as sent
                data = await adaptor._post(f"{adaptor.root}{upstream_model}:generateContent", native)
                return {**data, "modelVersion": model}, usage_of(data.get("usageMetadata"))
            result = await adaptor.complete(ChatRequest(body={**body, "model": upstream_model}, model=model,
                                                        upstream_model=upstream_model, request_id=request_id))
            return response_of(result.body, model, result.usage), result.usage

        answer, usage = await gw.relay.serve(call, attempt)
        call.mark_first_token()
        if usage is None:
            texts = [p.get("text", "") for c in answer.get("candidates") or []
                     for p in (c.get("content") or {}).get("parts") or []]
            usage = await anyio.to_thread.run_sync(lambda: Usage(
                prompt_tokens=tokens.count_chat_prompt(body), completion_tokens=sum(map(tokens.count, texts))))
        gw.relay.finish(call, usage)
        return JSONResponse(answer, headers=headers)

    state: dict[str, Any] = {"usage": None, "texts": []}

    async def open_stream(adaptor: Adaptor, upstream_model: str) -> tuple[AsyncIterator[dict[str, Any]], Any]:
        if isinstance(adaptor, GeminiAdaptor):
            chunks = _native_chunks(adaptor, upstream_model, native, model, state)
        else:
            chunks = _translated_chunks(adaptor.stream(ChatRequest(
                body={**body, "model": upstream_model, "stream": True, "stream_options": {"include_usage": True}},
                model=model, upstream_model=upstream_model, request_id=request_id)), model, state)
        try:
            first = await chunks.__anext__()  # the upstream has answered
        except BaseException:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        return _prepend(first, chunks), first

    watch = DisconnectWatch(request.receive)
    try:
        chunks, _ = await while_connected(watch, gw.relay.serve(call, open_stream))
    finally:
        watch.stop()
    call.mark_first_token()
    return StreamingResponse(_relay(gw, call, body, chunks, state), media_type="text/event-stream",
                             headers=headers | {"Cache-Control": "no-cache"})


async def _prepend(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    yield first
    async for chunk in rest:
        yield chunk


async def _native_chunks(adaptor: GeminiAdaptor, upstream_model: str, native: dict[str, Any], model: str,
                         state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A Gemini channel's own stream, passed on; usage and text noted for billing."""
    url = f"{adaptor.root}{upstream_model}:streamGenerateContent?alt=sse"
    with transport_errors():
        async with adaptor.http.stream("POST", url, json=native, headers=adaptor.headers) as response:
            if response.status_code >= 400:
                raise failure(response.status_code, await response.aread())
            async for _event, raw in sse_events(response):
                data = loads(raw, "a Gemini stream event")
                if "error" in data:
                    raise UpstreamFailure(f"Gemini: {(data['error'] or {}).get('message', 'stream error')}",
                                          kind=FailureKind.RETRY)
                state["usage"] = usage_of(data.get("usageMetadata")) or state["usage"]
                for candidate in data.get("candidates") or []:
                    state["texts"].append(_text((candidate.get("content") or {}).get("parts")))
                yield {**data, "modelVersion": model}


async def _translated_chunks(chunks: AsyncIterator[dict[str, Any]], model: str,
                             state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """OpenAI chunks as Gemini stream chunks (one per chunk that carries something)."""
    try:
        async for chunk in chunks:
            if chunk.get("usage"):
                state["usage"] = Usage.from_openai(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                parts = _parts_of(delta) if (delta.get("content") or delta.get("reasoning_content")) else []
                parts += [{"functionCall": {"name": (c.get("function") or {}).get("name", ""), "args": {}}}
                          for c in delta.get("tool_calls") or [] if (c.get("function") or {}).get("name")]
                finish = choice.get("finish_reason")
                if delta.get("content"):
                    state["texts"].append(delta["content"])
                if parts or finish:
                    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
                    if finish:
                        candidate["finishReason"] = FINISH.get(finish, "STOP")
                    yield {"candidates": [candidate], "modelVersion": model}
        yield {"candidates": [], "usageMetadata": _usage_metadata(state["usage"]), "modelVersion": model}
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _relay(gw: Gateway, call: Call, body: dict[str, Any], chunks: AsyncIterator[dict[str, Any]],
                 state: dict[str, Any]) -> AsyncIterator[bytes]:
    status, error, done = 200, "", False
    try:
        async for chunk in chunks:
            yield b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\r\n\r\n"
        done = True
    except (UpstreamFailure, UpstreamError) as exc:
        status, error = UpstreamError.status, str(getattr(exc, "message", exc))
        yield b"data: " + json.dumps({"error": {"code": 502, "message": f"The upstream failed mid-stream: {error}",
                                                "status": "UNAVAILABLE"}}).encode() + b"\r\n\r\n"
    finally:
        if not done and not error:
            status, error = CLIENT_CLOSED, "the client closed the stream before it ended"
        with anyio.CancelScope(shield=True):
            await chunks.aclose()  # type: ignore[attr-defined]
            await gw.relay.finish_translated(call, state.get("usage"), body, list(state["texts"]), complete=done,
                                             status=status, error=error)
