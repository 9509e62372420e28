"""A stand-in for Anthropic's Messages API (``POST /v1/messages``), JSON and SSE.

Built from Anthropic's API reference: ``x-api-key`` (or a Bearer key) +
``anthropic-version`` headers (version 2026-10-21 refuses ``temperature``,
``top_p`` and ``top_k``), ``max_tokens`` required, content blocks (text, image, tool_use,
tool_result, thinking), errors as ``{"type": "error", "error": {...}}`` with 529
for overload, and the streaming event sequence ``message_start``,
``content_block_start/delta/stop``, ``message_delta`` (usage), ``message_stop``,
``ping``. The official ``anthropic`` SDK parses everything it returns
(tests/providers/test_upstreams.py).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.providers.script import BrokenStream, Part, Reply, Switches, Turn, answer, words

KEY = "sk-ant-test"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}
STOP = {"end": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence", "tool": "tool_use",
        "blocked": "refusal"}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": "req_" + uuid.uuid4().hex[:20]}
    return JSONResponse(body, status_code=status, headers=headers)


def _parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Part("text", text=content)]
    parts = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append(Part("text", text=block["text"]))
        elif kind == "image":
            source = block["source"]
            size = len(base64.b64decode(source["data"])) if source["type"] == "base64" else 0
            parts.append(Part("image", mime=source.get("media_type", "url"), size=size))
        elif kind == "tool_use":
            parts.append(Part("tool_call", name=block["name"], args=block["input"], call_id=block["id"]))
        elif kind == "tool_result":
            inner = block.get("content", "")
            text = inner if isinstance(inner, str) else " ".join(b.get("text", "") for b in inner)
            parts.append(Part("tool_result", text=text, call_id=block["tool_use_id"]))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        elif kind == "document":  # a text source is read as text; a PDF as its size
            source = block["source"]
            if source["type"] == "text":
                parts.append(Part("text", text=source["data"]))
            elif source["type"] == "content":
                parts.append(Part("text", text=" ".join(b.get("text", "") for b in source["content"])))
            else:
                parts.append(Part("text", text=f"[{source.get('media_type', 'document')}]"))
        elif kind == "search_result":
            parts.append(Part("text", text=" ".join(b.get("text", "") for b in block["content"])))
        else:
            raise ValueError(f"messages: unknown content block type {kind!r}")
    return parts


def _system(system: Any) -> str:
    if isinstance(system, list):
        return " ".join(b["text"] for b in system)
    return system or ""


def _content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig-" + "a" * 16})
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    if reply.tool_name:
        blocks.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": reply.tool_name,
                       "input": reply.tool_args})
    return blocks


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def create_app(switches: Switches | None = None) -> Starlette:
    switches = switches or Switches()

    async def messages(request: Request) -> Response:
        # The API takes the key as x-api-key or, as current SDKs send it, as a Bearer token.
        if KEY not in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:]):
            return error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "anthropic-version: header is required")
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request body is not valid JSON.")
        switches.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        status = switches.failing()
        if status == 429:
            return error(429, "Number of request tokens has exceeded your per-minute rate limit",
                         {"retry-after": str(switches.retry_after)})
        if status:
            return error(status, {529: "Overloaded"}.get(status, f"switched to fail with {status}"))
        if request.headers["anthropic-version"] >= "2026-10-21" and {"temperature", "top_p", "top_k"} & set(body):
            return error(400, "temperature, top_p and top_k are not supported by this API version")
        if not isinstance(body.get("max_tokens"), int):
            return error(400, "max_tokens: Field required")
        if not body.get("messages"):
            return error(400, "messages: at least one message is required")
        try:
            if any(m["role"] not in ("user", "assistant", "system") for m in body["messages"]):
                raise ValueError("each role must be 'user', 'assistant' or 'system'")
            # Mid-conversation system instructions (Claude Code sends them) add to the system prompt.
            inline_system = [" ".join(p.text for p in _parts(m["content"])) for m in body["messages"]
                             if m["role"] == "system"]
            turns = [Turn(m["role"], _parts(m["content"])) for m in body["messages"] if m["role"] != "system"]
        except (KeyError, TypeError, ValueError) as exc:
            return error(400, f"messages: {exc}")
        tools = [t["name"] for t in body.get("tools") or []]
        if (body.get("tool_choice") or {}).get("type") == "none":
            tools = []
        reply = answer(" ".join(filter(None, [_system(body.get("system")), *inline_system])), turns, tools,
                       max_tokens=body["max_tokens"],
                       stop=body.get("stop_sequences"),
                       thinking=(body.get("thinking") or {}).get("type") == "enabled")
        # Blocks marked cache_control are written to the prompt cache (a word a token), as Anthropic
        # reports on a first request: counted apart from input_tokens, split by the cache's lifetime.
        cached = [b for m in body["messages"] if isinstance(m.get("content"), list) for b in m["content"]
                  if isinstance(b, dict) and b.get("cache_control")]
        written_1h = sum(words(b.get("text", "")) for b in cached if b["cache_control"].get("ttl") == "1h")
        written = sum(words(b.get("text", "")) for b in cached)
        message = {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
                   "model": body.get("model", ""), "content": _content(reply), "stop_reason": STOP[reply.stop],
                   "stop_sequence": reply.stop_sequence or None,
                   "usage": {"input_tokens": reply.input_tokens - written, "output_tokens": reply.output_tokens,
                             "cache_creation_input_tokens": written, "cache_read_input_tokens": 0,
                             "cache_creation": {"ephemeral_5m_input_tokens": written - written_1h,
                                                "ephemeral_1h_input_tokens": written_1h}}}
        if not body.get("stream"):
            return JSONResponse(message)
        return StreamingResponse(_stream(message, reply, switches), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


async def _stream(message: dict[str, Any], reply: Reply, switches: Switches) -> AsyncIterator[bytes]:
    events: list[bytes] = []
    start = dict(message, content=[], stop_reason=None, stop_sequence=None,
                 usage=dict(message["usage"], output_tokens=1))
    events.append(_sse("message_start", {"type": "message_start", "message": start}))
    events.append(_sse("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            first, deltas = {"type": "thinking", "thinking": ""}, [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]}]
        elif block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in reply.pieces()]
        else:
            first = dict(block, input={})
            raw = json.dumps(block["input"])
            cut = len(raw) // 2
            deltas = [{"type": "input_json_delta", "partial_json": raw[:cut]},
                      {"type": "input_json_delta", "partial_json": raw[cut:]}]
        events.append(_sse("content_block_start", {"type": "content_block_start", "index": index,
                                                   "content_block": first}))
        events += [_sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                   for d in deltas]
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(_sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": message["stop_reason"],
                                                   "stop_sequence": message["stop_sequence"]},
                                         "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    events.append(_sse("message_stop", {"type": "message_stop"}))
    for sent, event in enumerate(events):
        if not await switches.pace(sent):
            if not switches.break_with_error:
                raise BrokenStream("cut by the test")
            yield _sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        yield event
