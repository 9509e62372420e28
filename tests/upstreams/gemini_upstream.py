"""A stand-in for the Gemini API (``generativelanguage.googleapis.com``, ``/v1`` and ``/v1beta``).

Built from Google's reference: ``models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` (each SSE ``data:`` a whole
GenerateContentResponse, CRLF-framed, no ``[DONE]``), ``:embedContent`` and
``:batchEmbedContents``; the key in ``x-goog-api-key`` (or ``?key=``); camelCase
JSON; roles ``user``/``model``, ``systemInstruction``, ``inlineData`` images,
``functionCall``/``functionResponse`` parts, thought parts, safety blocks
(``promptFeedback.blockReason`` or a ``SAFETY`` finish reason) and
``usageMetadata``. Errors are google.rpc statuses; a bad key is a 400
``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``, as Google answers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.providers.script import BrokenStream, Part, Reply, Switches, Turn, answer

KEY = "gemini-test-key"
OWN_FILE = "uploaded-by-this-key"  # the one Files API file this stand-in's key may read
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
FINISH = {"end": "STOP", "stop_sequence": "STOP", "tool": "STOP", "length": "MAX_TOKENS", "blocked": "SAFETY"}


def error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = {"error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN"),
                      "details": details or []}}
    return JSONResponse(body, status_code=status)


def _parts(parts: list[dict[str, Any]]) -> list[Part]:
    out = []
    for p in parts:
        if p.get("thought"):
            continue
        if "text" in p:
            out.append(Part("text", text=p["text"]))
        elif "inlineData" in p:
            data = p["inlineData"]
            out.append(Part("image", mime=data["mimeType"], size=len(base64.b64decode(data["data"]))))
        elif "fileData" in p:
            out.append(Part("image", mime=p["fileData"].get("mimeType", "url")))
        elif "functionCall" in p:
            call = p["functionCall"]
            out.append(Part("tool_call", name=call["name"], args=call.get("args") or {}))
        elif "functionResponse" in p:
            response = p["functionResponse"].get("response") or {}
            text = response.get("content", response.get("output", json.dumps(response)))
            out.append(Part("tool_result", text=text if isinstance(text, str) else json.dumps(text),
                            name=p["functionResponse"]["name"]))
        else:
            raise ValueError(f"unknown part {sorted(p)}")
    return out


def _candidate_parts(reply: Reply, text: str | None = None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.thinking and text is None:
        parts.append({"text": reply.thinking, "thought": True})
    if text is None:
        text = reply.text
    if text:
        parts.append({"text": text})
    if reply.tool_name:
        parts.append({"functionCall": {"name": reply.tool_name, "args": reply.tool_args}})
    return parts


def _usage(reply: Reply) -> dict[str, int]:
    thoughts = len(reply.thinking.split())
    usage = {"promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens - thoughts,
             "totalTokenCount": reply.input_tokens + reply.output_tokens}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _response(reply: Reply, model: str, said: str) -> dict[str, Any]:
    if reply.stop == "blocked" and "prompt" in said:
        return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
                "usageMetadata": {"promptTokenCount": reply.input_tokens, "totalTokenCount": reply.input_tokens},
                "modelVersion": model}
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": _candidate_parts(reply)},
                                 "finishReason": FINISH[reply.stop], "index": 0}
    if reply.stop == "blocked":
        candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}
    return {"candidates": [candidate], "usageMetadata": _usage(reply), "modelVersion": model,
            "responseId": "resp-" + str(abs(hash(said)) % 10**8)}


_OPAQUE = {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema"}


def _camel(value: Any) -> Any:
    """Google's JSON parser takes proto field names in camelCase or snake_case alike; so does this one."""
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        head, *rest = key.split("_")
        name = head + "".join(w[:1].upper() + w[1:] for w in rest)
        out[name] = item if name in _OPAQUE else _camel(item)
    return out


def _embed(text: str) -> list[float]:
    return [round(len(text) / 100, 4), float(len(text.split())), 0.5, -0.25]


def create_app(switches: Switches | None = None) -> Starlette:
    switches = switches or Switches()

    async def model_call(request: Request) -> Response:
        model, _, method = request.path_params["rest"].partition(":")
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if key != KEY:
            return error(400, "API key not valid. Please pass a valid API key.", [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com"}])
        try:
            body = _camel(await request.json())
        except ValueError:
            return error(400, "Invalid JSON payload received.")
        switches.requests.append({"path": request.url.path, "query": dict(request.query_params),
                                  "headers": dict(request.headers), "body": body})
        status = switches.failing()
        if status == 429:
            return error(429, "Resource has been exhausted (e.g. check quota).", [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{switches.retry_after}s"}])
        if status:
            return error(status, {503: "The model is overloaded. Please try again later."}.get(
                status, f"switched to fail with {status}"))
        if method == "embedContent":
            text = " ".join(p.get("text", "") for p in body["content"]["parts"])
            return JSONResponse({"embedding": {"values": _embed(text)}})
        if method == "batchEmbedContents":
            return JSONResponse({"embeddings": [
                {"values": _embed(" ".join(p.get("text", "") for p in r["content"]["parts"]))}
                for r in body["requests"]]})
        if method not in ("generateContent", "streamGenerateContent"):
            return error(404, f"Method {method} not found")
        if not body.get("contents"):
            return error(400, "* GenerateContentRequest.contents: contents is not specified")
        for content in body["contents"]:
            for part in content.get("parts") or ():
                uri = (part.get("fileData") or {}).get("fileUri", "")
                if "/files/" in uri and not uri.endswith(f"/files/{OWN_FILE}"):
                    # What Gemini answers for a Files API link this key's project cannot read.
                    name = uri.rsplit("/", 1)[-1]
                    return error(403, f"You do not have permission to access the File {name} or it may not exist.")
        try:
            turns = [Turn("assistant" if c.get("role") == "model" else "user", _parts(c["parts"]))
                     for c in body["contents"]]
        except (KeyError, TypeError, ValueError) as exc:
            return error(400, f"Invalid value at 'contents': {exc}")
        system = " ".join(p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", []))
        tools = [f["name"] for t in body.get("tools") or [] for f in t.get("functionDeclarations") or []]
        if ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode") == "NONE":
            tools = []
        config = body.get("generationConfig") or {}
        reply = answer(system, turns, tools, max_tokens=config.get("maxOutputTokens"),
                       stop=config.get("stopSequences"),
                       thinking=bool((config.get("thinkingConfig") or {}).get("includeThoughts")))
        said = turns[-1].text()
        if method == "generateContent":
            return JSONResponse(_response(reply, model, said))
        if request.query_params.get("alt") != "sse":
            return JSONResponse([_response(reply, model, said)])  # without alt=sse Google streams a JSON array
        return StreamingResponse(_stream(reply, model, said, switches), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1beta/models/{rest:path}", model_call, methods=["POST"]),
                             Route("/v1/models/{rest:path}", model_call, methods=["POST"])])


async def _stream(reply: Reply, model: str, said: str, switches: Switches) -> AsyncIterator[bytes]:
    full = _response(reply, model, said)
    chunks: list[dict[str, Any]] = []
    if "candidates" in full and reply.stop != "blocked":
        pieces = reply.pieces() or [""]
        for i, piece in enumerate(pieces):
            parts = _candidate_parts(reply, piece) if i == len(pieces) - 1 else [{"text": piece}]
            if i == 0 and reply.thinking:
                parts.insert(0, {"text": reply.thinking, "thought": True})
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if i == len(pieces) - 1:
                candidate["finishReason"] = FINISH[reply.stop]
                chunk["usageMetadata"] = full["usageMetadata"]
            else:
                chunk["usageMetadata"] = {"promptTokenCount": reply.input_tokens,
                                          "totalTokenCount": reply.input_tokens}
            chunks.append(chunk)
    else:
        chunks.append(full)
    for sent, chunk in enumerate(chunks):
        if not await switches.pace(sent):
            if not switches.break_with_error:
                raise BrokenStream("cut by the test")
            yield b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
            return
        yield b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"
