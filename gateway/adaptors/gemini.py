"""Google's Gemini API: ``generateContent``, ``streamGenerateContent?alt=sse``, ``batchEmbedContents``.

The key travels in ``x-goog-api-key``. Settings: ``api_version`` (default
``v1beta``). Safety blocks (a blocked prompt or a ``SAFETY``-like finish reason)
come back as ``finish_reason: "content_filter"``, so a client can tell a refusal
from an empty answer.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from gateway.adaptors._chat import (
    OpenAIWriter,
    append_turn,
    bad_request,
    content_parts,
    content_text,
    embedding_as_requested,
    function_tools,
    loads,
    max_tokens,
    parse_image,
    stop_list,
    tool_arguments,
    tool_call,
)
from gateway.adaptors._sse import sse_events
from gateway.adaptors.base import (
    CHAT,
    EMBEDDINGS,
    Adaptor,
    ChannelConfig,
    ChatRequest,
    ChatResult,
    FailureKind,
    JSONRequest,
    JSONResult,
    UpstreamFailure,
    Usage,
    transport_errors,
)

BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
THINKING_BUDGET = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_FATAL_STATUS = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
# ErrorInfo reasons that blame the channel's key or project, whatever the request held.
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED", "CONSUMER_SUSPENDED",
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "BILLING_DISABLED"}


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name: Gemini answers by name

    add = functools.partial(append_turn, contents, key="parts")

    for m in body.get("messages") or []:
        role = m.get("role") if isinstance(m, dict) else None
        if role in ("system", "developer"):
            system.append(content_text(m.get("content")))
        elif role == "user":
            add("user", _parts(m.get("content")))
        elif role == "assistant":
            parts = _parts(m.get("content"))
            for call in m.get("tool_calls") or []:
                name = (call.get("function") or {}).get("name", "")
                call_names[call.get("id", "")] = name
                parts.append({"functionCall": {"name": name, "args": tool_arguments(call)}})
            add("model", parts)
        elif role == "tool":
            name = call_names.get(m.get("tool_call_id", ""), m.get("name") or "")
            text = m.get("content") if isinstance(m.get("content"), str) else content_text(m.get("content"))
            add("user", [{"functionResponse": {"name": name, "response": {"content": text}}}])
        else:
            raise bad_request(f"unknown message role {role!r}", "messages")
    if not contents:
        raise bad_request("at least one user message is required", "messages")
    out: dict[str, Any] = {"contents": contents}
    if any(system):
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(s for s in system if s)}]}
    config: dict[str, Any] = {}
    if limit := max_tokens(body):
        config["maxOutputTokens"] = limit
    if stops := stop_list(body):
        config["stopSequences"] = stops
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
                     ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if isinstance(body.get(src), int | float):
            config[dst] = body[src]
    fmt = (body.get("response_format") or {}).get("type")
    if fmt in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    effort = body.get("reasoning_effort")
    if effort in THINKING_BUDGET:
        config["thinkingConfig"] = {"includeThoughts": True, "thinkingBudget": THINKING_BUDGET[effort]}
    if config:
        out["generationConfig"] = config
    if tools := function_tools(body):
        out["tools"] = [{"functionDeclarations": [
            {"name": t["name"], "description": t["description"], "parametersJsonSchema": t["parameters"]}
            for t in tools]}]
        choice = body.get("tool_choice")
        mode = {"none": "NONE", "required": "ANY"}.get(choice, "AUTO") if isinstance(choice, str) else "AUTO"
        calling: dict[str, Any] = {"mode": mode}
        if isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
            calling = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
        out["toolConfig"] = {"functionCallingConfig": calling}
    return out


def _parts(content: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = parse_image(part)
            parts.append({"inlineData": {"mimeType": image.mime, "data": image.b64}} if image.data is not None
                         else {"fileData": {"mimeType": image.mime, "fileUri": image.url}})
        else:
            raise bad_request(f"content parts of type {kind!r} are not supported by Gemini", "messages")
    return parts


def usage_of(meta: dict[str, Any] | None) -> Usage | None:
    if not meta:
        return None
    completion = int(meta.get("candidatesTokenCount") or 0) + int(meta.get("thoughtsTokenCount") or 0)
    return Usage(prompt_tokens=int(meta.get("promptTokenCount") or 0), completion_tokens=completion,
                 cached_tokens=int(meta.get("cachedContentTokenCount") or 0))


def finish_of(reason: str | None, has_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason in BLOCKED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


def has_file_links(body: dict[str, Any]) -> bool:
    """Whether a Gemini body names files by URI (links the client supplied)."""
    return any("fileData" in part for content in body.get("contents") or () if isinstance(content, dict)
               for part in content.get("parts") or () if isinstance(part, dict))


def failure(status: int, content: bytes, *, file_links: bool = False) -> UpstreamFailure:
    """Gemini's error as an :class:`UpstreamFailure`.

    ``file_links``: the request named files by URI. Gemini answers 403
    PERMISSION_DENIED for a file this key cannot read, which is the client's
    link at fault, not the channel's key: it must not disable the channel.
    """
    try:
        err = json.loads(content).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    message = err.get("message") or content.decode("utf-8", "replace")[:300] or f"HTTP {status}"
    details = err.get("details") or []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    retry_after = None
    for d in details:
        delay = d.get("retryDelay") if isinstance(d, dict) else None
        if isinstance(delay, str) and re.fullmatch(r"\d+(\.\d+)?s", delay):
            retry_after = float(delay[:-1])
    key_problem = bool(reasons & _KEY_REASONS) or "api key" in message.lower()
    if file_links and status == 403 and not key_problem and "file" in message.lower():
        kind = FailureKind.CLIENT
    elif err.get("status") in _FATAL_STATUS or "API_KEY_INVALID" in reasons or status in (401, 403):
        kind = FailureKind.FATAL
    elif status in (408, 429) or status >= 500:
        kind = FailureKind.RETRY
    else:
        kind = FailureKind.CLIENT
    return UpstreamFailure(f"Gemini: {message}", kind=kind, status=status, retry_after=retry_after,
                           code=(err.get("status") or "").lower() or None, error_type="invalid_request_error")


class GeminiAdaptor(Adaptor):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    supports: ClassVar[frozenset[str]] = frozenset({CHAT, EMBEDDINGS})

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        super().__init__(channel, http)
        version = str(channel.settings.get("api_version") or "v1beta")
        self.root = re.sub(r"/v1(beta\d*|alpha)?$", "", self.base_url) + f"/{version}/models/"
        self.headers = {"x-goog-api-key": channel.key}

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        with transport_errors():
            response = await self.http.post(url, json=body, headers=self.headers)
            content = await response.aread()
        if response.status_code >= 400:
            raise failure(response.status_code, content, file_links=has_file_links(body))
        data = loads(content, "Gemini's answer")
        if not isinstance(data, dict):
            raise UpstreamFailure("Gemini answered with JSON that is not an object", kind=FailureKind.RETRY)
        return data

    async def complete(self, request: ChatRequest) -> ChatResult:
        data = await self._post(f"{self.root}{request.upstream_model}:generateContent", to_gemini(request.body))
        writer = OpenAIWriter(request.model, request.request_id)
        text, reasoning, calls, finish = [], [], [], None
        candidates = data.get("candidates") or []
        for part in ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []:
            if "functionCall" in part:
                fc = part["functionCall"]
                calls.append(tool_call(fc.get("id") or f"call_{len(calls)}", fc.get("name", ""), fc.get("args") or {}))
            elif part.get("thought"):
                reasoning.append(part.get("text", ""))
            elif "text" in part:
                text.append(part["text"])
        if candidates:
            finish = finish_of(candidates[0].get("finishReason"), bool(calls))
        elif (data.get("promptFeedback") or {}).get("blockReason"):
            finish = "content_filter"
        usage = usage_of(data.get("usageMetadata"))
        body = writer.completion(text="".join(text), tool_calls=calls, reasoning="".join(reasoning),
                                 finish_reason=finish or "stop", usage=usage)
        return ChatResult(body=body, usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        writer = OpenAIWriter(request.model, request.request_id)
        url = f"{self.root}{request.upstream_model}:streamGenerateContent?alt=sse"
        usage: Usage | None = None
        finish: str | None = None
        calls = 0
        started = False
        with transport_errors():
            body = to_gemini(request.body)
            async with self.http.stream("POST", url, json=body, headers=self.headers) as response:
                if response.status_code >= 400:
                    raise failure(response.status_code, await response.aread(), file_links=has_file_links(body))
                async for _event, raw in sse_events(response):
                    data = loads(raw, "a Gemini stream event")
                    if "error" in data:
                        err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
                        raise UpstreamFailure(f"Gemini: {err.get('message') or 'stream error'}",
                                              kind=FailureKind.RETRY, status=int(err.get("code") or 500))
                    if not started:
                        started = True
                        yield writer.chunk({"role": "assistant", "content": ""})
                    usage = usage_of(data.get("usageMetadata")) or usage
                    candidates = data.get("candidates") or []
                    if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
                        finish = "content_filter"
                    for candidate in candidates[:1]:
                        for part in (candidate.get("content") or {}).get("parts") or []:
                            if "functionCall" in part:
                                fc = part["functionCall"]
                                call = tool_call(fc.get("id") or f"call_{calls}", fc.get("name", ""),
                                                 fc.get("args") or {})
                                yield writer.chunk({"tool_calls": [dict(call, index=calls)]})
                                calls += 1
                            elif part.get("thought"):
                                yield writer.chunk({"reasoning_content": part.get("text", "")})
                            elif part.get("text"):
                                yield writer.chunk({"content": part["text"]})
                        finish = finish_of(candidate.get("finishReason"), calls > 0) or finish
        if not started:
            raise UpstreamFailure("Gemini's stream ended before any answer", kind=FailureKind.RETRY)
        if finish is None:
            raise UpstreamFailure("Gemini's stream ended without a finish reason", kind=FailureKind.RETRY)
        yield writer.chunk({}, finish)
        if usage is not None:
            yield writer.usage_chunk(usage)

    async def embed(self, request: JSONRequest) -> JSONResult:
        raw = request.body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            raise bad_request("input must be a string or a list of strings for Gemini embeddings", "input")
        model = f"models/{request.upstream_model}"
        item: dict[str, Any] = {"model": model}
        if isinstance(request.body.get("dimensions"), int):
            item["outputDimensionality"] = request.body["dimensions"]
        data = await self._post(f"{self.root}{request.upstream_model}:batchEmbedContents",
                                {"requests": [dict(item, content={"parts": [{"text": t}]}) for t in inputs]})
        vectors = [e.get("values") or [] for e in data.get("embeddings") or []]
        # Gemini reports no token count for embeddings: bill about four characters a token.
        tokens = sum(math.ceil(len(t) / 4) for t in inputs)
        usage = Usage(prompt_tokens=tokens)
        body = {"object": "list", "model": request.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "data": [{"object": "embedding", "index": i,
                          "embedding": embedding_as_requested(v, request.body.get("encoding_format"))}
                         for i, v in enumerate(vectors)]}
        return JSONResult(body=body, usage=usage)
