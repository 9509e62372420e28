"""A stand-in for Cloudflare Workers AI under ``/client/v4/accounts/{account_id}/ai``.

Built from Cloudflare's docs: the OpenAI-compatible ``/ai/v1/chat/completions``
and ``/ai/v1/embeddings`` (OpenAI's wire format; the ``openai`` SDK parses it),
and the native ``/ai/run/{model}`` (``{"result": {"response", "tool_calls",
"usage"}, "success", "errors", "messages"}``; streaming ``data: {"response":
...}`` lines ending in ``data: [DONE]``). Bearer API tokens; errors in
Cloudflare's envelope ``{"success": false, "errors": [{"code", "message"}]}``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.providers.script import BrokenStream, Part, Reply, Switches, Turn, answer

TOKEN = "cf-test-token"
ACCOUNT = "acc123"
FINISH = {"end": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls",
          "blocked": "content_filter"}
CODES = {400: 5006, 401: 10000, 403: 10000, 404: 7003, 429: 3040, 500: 3043, 503: 3040}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "errors": [{"code": CODES.get(status, 7000), "message": message}],
                         "messages": [], "result": None}, status_code=status, headers=headers)


def _openai_parts(content: Any) -> list[Part]:
    if isinstance(content, str) or content is None:
        return [Part("text", text=content or "")]
    out = []
    for item in content:
        if item["type"] == "text":
            out.append(Part("text", text=item["text"]))
        elif item["type"] == "image_url":
            url = item["image_url"]["url"]
            head, _, data = url.partition(",")
            mime = head[5:].split(";")[0] if url.startswith("data:") else "url"
            out.append(Part("image", mime=mime, size=len(base64.b64decode(data)) if data else 0))
    return out


def _turns(messages: list[dict[str, Any]]) -> tuple[str, list[Turn]]:
    system, turns = "", []
    for m in messages:
        if m["role"] == "system":
            system = " ".join(p.text for p in _openai_parts(m["content"]))
        elif m["role"] == "tool":
            turns.append(Turn("user", [Part("tool_result", text=m["content"], call_id=m.get("tool_call_id", ""))]))
        else:
            parts = _openai_parts(m.get("content"))
            for call in m.get("tool_calls") or []:
                parts.append(Part("tool_call", name=call["function"]["name"]))
            turns.append(Turn(m["role"], parts))
    return system, turns


def _tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    return [t["function"]["name"] if "function" in t else t["name"] for t in tools or []]


def _usage(reply: Reply) -> dict[str, int]:
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens}


def create_app(switches: Switches | None = None) -> Starlette:
    switches = switches or Switches()

    async def guard(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return None, error(401, "Authentication error")
        if request.path_params["account"] != ACCOUNT:
            return None, error(403, "Authentication error")
        try:
            body = await request.json()
        except ValueError:
            return None, error(400, "Bad input: the body is not JSON")
        switches.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        status = switches.failing()
        if status == 429:
            return None, error(429, "Capacity temporarily exceeded, please try again.",
                               {"retry-after": str(switches.retry_after)})
        if status:
            return None, error(status, f"switched to fail with {status}")
        return body, None

    async def chat(request: Request) -> Response:
        body, refused = await guard(request)
        if refused is not None:
            return refused
        assert body is not None
        system, turns = _turns(body["messages"])
        stop = body.get("stop")
        reply = answer(system, turns, _tool_names(body.get("tools")), max_tokens=body.get("max_tokens"),
                       stop=[stop] if isinstance(stop, str) else stop)
        cid, created, model = "chatcmpl-" + uuid.uuid4().hex[:12], int(time.time()), body["model"]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_name:
            message["tool_calls"] = [{"id": "call_" + uuid.uuid4().hex[:10], "type": "function", "function": {
                "name": reply.tool_name, "arguments": json.dumps(reply.tool_args)}}]
        if not body.get("stream"):
            return JSONResponse({"id": cid, "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": message, "finish_reason": FINISH[reply.stop]}],
                                 "usage": _usage(reply)})

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> dict[str, Any]:
            out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                out["choices"], out["usage"] = [], _usage(reply)
            return out

        chunks = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in reply.pieces()]
        if reply.tool_name:
            call = message["tool_calls"][0]
            chunks.append(chunk({"tool_calls": [dict(call, index=0)]}))
        chunks.append(chunk({}, FINISH[reply.stop]))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(chunk({}, usage=True))
        return StreamingResponse(_sse([json.dumps(c) for c in chunks], switches), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        body, refused = await guard(request)
        if refused is not None:
            return refused
        assert body is not None
        inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
        return JSONResponse({"object": "list", "model": body["model"], "data": [
            {"object": "embedding", "index": i, "embedding": [len(t) / 100, float(len(t.split())), 0.5]}
            for i, t in enumerate(inputs)], "usage": {"prompt_tokens": sum(len(t.split()) for t in inputs),
                                                      "total_tokens": sum(len(t.split()) for t in inputs)}})

    async def run(request: Request) -> Response:
        body, refused = await guard(request)
        if refused is not None:
            return refused
        assert body is not None
        if "messages" not in body and "prompt" not in body:
            return error(400, "Type mismatch of '/messages', 'array' not in 'object'")
        messages = body.get("messages") or [{"role": "user", "content": body["prompt"]}]
        system, turns = _turns(messages)
        reply = answer(system, turns, _tool_names(body.get("tools")), max_tokens=body.get("max_tokens"))
        result: dict[str, Any] = {"response": reply.text, "usage": _usage(reply)}
        if reply.tool_name:
            result["tool_calls"] = [{"name": reply.tool_name, "arguments": reply.tool_args}]
        if not body.get("stream"):
            return JSONResponse({"result": result, "success": True, "errors": [], "messages": []})
        lines = [json.dumps({"response": p, "p": "abcd"}) for p in reply.pieces()]
        if reply.tool_name:
            lines.append(json.dumps({"response": "", "tool_calls": result["tool_calls"]}))
        lines.append(json.dumps({"response": "", "usage": _usage(reply)}))
        return StreamingResponse(_sse(lines, switches), media_type="text/event-stream")

    base = "/client/v4/accounts/{account}/ai"
    return Starlette(routes=[Route(base + "/v1/chat/completions", chat, methods=["POST"]),
                             Route(base + "/v1/embeddings", embeddings, methods=["POST"]),
                             Route(base + "/run/{model:path}", run, methods=["POST"])])


async def _sse(lines: list[str], switches: Switches) -> AsyncIterator[bytes]:
    for sent, line in enumerate(lines + ["[DONE]"]):
        if not await switches.pace(sent):
            if not switches.break_with_error:
                raise BrokenStream("cut by the test")
            yield b'data: {"error": "InferenceUpstreamError: capacity exceeded"}\n\n'
            return
        yield f"data: {line}\n\n".encode()
