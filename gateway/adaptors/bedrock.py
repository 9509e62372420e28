"""Amazon Bedrock Runtime's Converse and ConverseStream APIs, SigV4-signed by us.

A channel key is ``ACCESS_KEY_ID|SECRET_ACCESS_KEY`` or
``ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN`` (a key without ``|`` is a
Bedrock API key, sent as a Bearer token). Settings: ``region`` (else read from
the base URL ``https://bedrock-runtime.REGION.amazonaws.com``, else
``us-east-1``) and ``session_token``. ConverseStream answers in AWS's binary
event-stream framing (:mod:`gateway.adaptors._eventstream`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from gateway.adaptors._chat import (
    OpenAIWriter,
    append_turn,
    bad_request,
    content_parts,
    content_text,
    function_tools,
    loads,
    max_tokens,
    parse_image,
    stop_list,
    tool_arguments,
    tool_call,
)
from gateway.adaptors._eventstream import Decoder, EventStreamError
from gateway.adaptors._sigv4 import Credentials, sign
from gateway.adaptors.base import (
    CHAT,
    Adaptor,
    ChannelConfig,
    ChatRequest,
    ChatResult,
    FailureKind,
    UpstreamFailure,
    Usage,
    transport_errors,
)

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
          "model_context_window_exceeded": "length"}
THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
_FATAL = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
          "ExpiredTokenException", "MissingAuthenticationTokenException", "IncompleteSignatureException"}
_RETRY = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException", "ModelNotReadyException",
          "ModelTimeoutException", "ModelStreamErrorException", "ServiceQuotaExceededException"}


def thinking_max_tokens(limit: int, effort: str) -> int:
    """``maxTokens`` with room for the thinking budget ``effort`` asks for, and 1,024 tokens of answer."""
    return max(limit, THINKING_BUDGET[effort] + 1024)


def to_converse(body: dict[str, Any]) -> dict[str, Any]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    add = functools.partial(append_turn, messages)

    for m in body.get("messages") or []:
        role = m.get("role") if isinstance(m, dict) else None
        if role in ("system", "developer"):
            system.append(content_text(m.get("content")))
        elif role == "user":
            add("user", _blocks(m.get("content")))
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for call in m.get("tool_calls") or []:
                blocks.append({"toolUse": {"toolUseId": call.get("id") or "tooluse_0",
                                           "name": (call.get("function") or {}).get("name", ""),
                                           "input": tool_arguments(call)}})
            add("assistant", blocks)
        elif role == "tool":
            text = m.get("content") if isinstance(m.get("content"), str) else content_text(m.get("content"))
            add("user", [{"toolResult": {"toolUseId": m.get("tool_call_id") or "", "content": [{"text": text}]}}])
        else:
            raise bad_request(f"unknown message role {role!r}", "messages")
    if not messages:
        raise bad_request("at least one user message is required", "messages")
    out: dict[str, Any] = {"messages": messages}
    if any(system):
        out["system"] = [{"text": s} for s in system if s]
    config: dict[str, Any] = {}
    if limit := max_tokens(body):
        config["maxTokens"] = limit
    if stops := stop_list(body):
        config["stopSequences"] = stops
    for src, dst in (("temperature", "temperature"), ("top_p", "topP")):
        if isinstance(body.get(src), int | float):
            config[dst] = body[src]
    if tools := function_tools(body):
        specs = []
        for t in tools:
            spec: dict[str, Any] = {"name": t["name"], "inputSchema": {"json": t["parameters"]}}
            if t["description"]:
                spec["description"] = t["description"]
            specs.append({"toolSpec": spec})
        out["toolConfig"] = {"tools": specs}
        choice = body.get("tool_choice")
        if choice == "required":
            out["toolConfig"]["toolChoice"] = {"any": {}}
        elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
            out["toolConfig"]["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    effort = body.get("reasoning_effort")
    if effort in THINKING_BUDGET:
        # Claude on Bedrock takes Anthropic's thinking switch as a model-specific field.
        out["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": THINKING_BUDGET[effort]}}
        config["maxTokens"] = thinking_max_tokens(config.get("maxTokens", 0), effort)
        config.pop("temperature", None)
    if config:
        out["inferenceConfig"] = config
    return out


def _blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            image = parse_image(part)
            if image.data is None:
                raise bad_request("Bedrock takes images as data URLs (data:image/png;base64,...), not links", "messages")
            fmt = IMAGE_FORMATS.get(image.mime)
            if fmt is None:
                raise bad_request(f"Bedrock does not take {image.mime} images (png, jpeg, gif, webp)", "messages")
            blocks.append({"image": {"format": fmt, "source": {"bytes": image.b64}}})
        else:
            raise bad_request(f"content parts of type {kind!r} are not supported by Bedrock", "messages")
    return blocks


def usage_of(data: dict[str, Any] | None) -> Usage | None:
    if not data:
        return None
    cached = int(data.get("cacheReadInputTokens") or 0)
    written = int(data.get("cacheWriteInputTokens") or 0)  # billed as Anthropic's 5-minute cache writes
    return Usage(prompt_tokens=int(data.get("inputTokens") or 0) + cached + written,
                 completion_tokens=int(data.get("outputTokens") or 0), cached_tokens=cached,
                 cache_write_tokens=written)


def failure(status: int, name: str, message: str) -> UpstreamFailure:
    name = name[:1].upper() + name[1:]
    if name in _FATAL or status in (401, 403):
        kind = FailureKind.FATAL
    elif name in _RETRY or status in (408, 429) or status >= 500:
        kind = FailureKind.RETRY
    else:
        kind = FailureKind.CLIENT
    return UpstreamFailure(f"Bedrock {name or status}: {message}", kind=kind, status=status, code=name or None,
                           error_type="invalid_request_error")


class BedrockAdaptor(Adaptor):
    name = "bedrock"
    default_base_url = ""
    supports: ClassVar[frozenset[str]] = frozenset({CHAT})

    @classmethod
    def output_limit(cls, body: dict[str, Any]) -> int:
        limit = max_tokens(body) or 0
        effort = body.get("reasoning_effort")
        return thinking_max_tokens(limit, effort) if effort in THINKING_BUDGET else limit

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        super().__init__(channel, http)
        found = re.search(r"bedrock-runtime[.-]([a-z0-9-]+)\.amazonaws\.com", self.base_url)
        self.region = str(channel.settings.get("region") or (found.group(1) if found else "us-east-1"))
        if not self.base_url:
            self.base_url = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        pieces = channel.key.split("|")
        self.bearer = channel.key if len(pieces) == 1 else ""
        self.credentials = None if self.bearer else Credentials(
            pieces[0].strip(), pieces[1].strip(),
            (pieces[2].strip() if len(pieces) > 2 else "") or str(channel.settings.get("session_token") or ""))

    def _request(self, model: str, action: str, body: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        # ':' stays literal: aiohttp's URL handling would decode %3A anyway, and the path signed
        # must be the path sent. '/' (in ARNs) stays encoded, as AWS expects.
        url = f"{self.base_url}/model/{quote(model, safe=':')}/{action}"
        content = json.dumps(body).encode()
        accept = "application/vnd.amazon.eventstream" if action == "converse-stream" else "application/json"
        headers = {"Content-Type": "application/json", "Accept": accept}
        if self.bearer:
            return url, content, headers | {"Authorization": f"Bearer {self.bearer}"}
        assert self.credentials is not None
        return url, content, sign("POST", url, headers, content, credentials=self.credentials,
                                  region=self.region, service="bedrock")

    @staticmethod
    async def _raise(response: httpx.Response) -> None:
        content = await response.aread()
        try:
            message = json.loads(content).get("message") or ""
        except (ValueError, AttributeError):
            message = content.decode("utf-8", "replace")[:300]
        name = response.headers.get("x-amzn-errortype", "").split(":")[0]
        raise failure(response.status_code, name, message or f"HTTP {response.status_code}")

    async def complete(self, request: ChatRequest) -> ChatResult:
        url, content, headers = self._request(request.upstream_model, "converse", to_converse(request.body))
        with transport_errors():
            response = await self.http.post(url, content=content, headers=headers)
            if response.status_code >= 400:
                await self._raise(response)
            data = loads(await response.aread(), "Bedrock's answer")
        text, reasoning, calls = [], [], []
        for block in ((data.get("output") or {}).get("message") or {}).get("content") or []:
            if "text" in block:
                text.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append(tool_call(use.get("toolUseId", ""), use.get("name", ""), use.get("input") or {}))
            elif "reasoningContent" in block:
                reasoning.append(((block["reasoningContent"] or {}).get("reasoningText") or {}).get("text", ""))
        usage = usage_of(data.get("usage"))
        body = OpenAIWriter(request.model, request.request_id).completion(
            text="".join(text), tool_calls=calls, reasoning="".join(reasoning),
            finish_reason=FINISH.get(data.get("stopReason") or "", "stop"), usage=usage)
        return ChatResult(body=body, usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        writer = OpenAIWriter(request.model, request.request_id)
        url, content, headers = self._request(request.upstream_model, "converse-stream", to_converse(request.body))
        tool_index: dict[int, int] = {}
        finish: str | None = None
        usage: Usage | None = None
        decoder = Decoder()
        with transport_errors():
            async with self.http.stream("POST", url, content=content, headers=headers) as response:
                if response.status_code >= 400:
                    await self._raise(response)
                async for data in response.aiter_bytes():
                    try:
                        messages = decoder.feed(data)
                    except EventStreamError as exc:
                        raise UpstreamFailure(f"Bedrock: {exc}", kind=FailureKind.RETRY) from exc
                    for msg in messages:
                        kind = msg.headers.get(":message-type")
                        payload = loads(msg.payload or b"{}", "a Bedrock stream event")
                        if kind != "event":
                            name = str(msg.headers.get(":exception-type") or msg.headers.get(":error-code") or "")
                            status = 429 if name.lower().startswith("throttling") else (
                                400 if name.lower().startswith("validation") else 500)
                            raise failure(status, name, payload.get("message") or "stream error")
                        event = msg.headers.get(":event-type")
                        if event == "messageStart":
                            yield writer.chunk({"role": "assistant", "content": ""})
                        elif event == "contentBlockStart":
                            use = (payload.get("start") or {}).get("toolUse")
                            if use:
                                index = tool_index[payload.get("contentBlockIndex", 0)] = len(tool_index)
                                call = tool_call(use.get("toolUseId", ""), use.get("name", ""), "")
                                yield writer.chunk({"tool_calls": [dict(call, index=index)]})
                        elif event == "contentBlockDelta":
                            delta = payload.get("delta") or {}
                            if "text" in delta:
                                yield writer.chunk({"content": delta["text"]})
                            elif "toolUse" in delta and payload.get("contentBlockIndex", 0) in tool_index:
                                index = tool_index[payload.get("contentBlockIndex", 0)]
                                yield writer.chunk({"tool_calls": [{"index": index, "function": {
                                    "arguments": delta["toolUse"].get("input", "")}}]})
                            elif (delta.get("reasoningContent") or {}).get("text"):
                                yield writer.chunk({"reasoning_content": delta["reasoningContent"]["text"]})
                        elif event == "messageStop":
                            finish = FINISH.get(payload.get("stopReason") or "", "stop")
                        elif event == "metadata":
                            usage = usage_of(payload.get("usage"))
        if finish is None:
            raise UpstreamFailure("Bedrock's stream ended before messageStop", kind=FailureKind.RETRY)
        yield writer.chunk({}, finish)
        if usage is not None:
            yield writer.usage_chunk(usage)
