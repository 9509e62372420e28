"""Cloudflare Workers AI: its OpenAI-compatible endpoint, or its native ``/ai/run/{model}``.

Settings: ``account_id`` (required: every Workers AI URL names the account) and
``api`` = ``openai`` (default: ``/ai/v1/chat/completions`` and ``/ai/v1/embeddings``,
OpenAI's format end to end) or ``native`` (``/ai/run/{model}``, for models the
compatible endpoint does not serve; text and tools, no images). The key is a
Cloudflare API token with Workers AI permission.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import httpx

from gateway.adaptors._chat import (
    OpenAIWriter,
    bad_request,
    content_parts,
    content_text,
    embedding_as_requested,
    function_tools,
    loads,
    max_tokens,
    tool_call,
)
from gateway.adaptors._sse import sse_events
from gateway.adaptors.base import (
    CHAT,
    EMBEDDINGS,
    ChannelConfig,
    ChatRequest,
    ChatResult,
    FailureKind,
    JSONRequest,
    JSONResult,
    UpstreamFailure,
    Usage,
    classify,
    transport_errors,
)
from gateway.adaptors.openai import OpenAIAdaptor


def cloudflare_message(message: str) -> str:
    """Cloudflare's ``{"errors": [{"code", "message"}]}`` envelope as one readable line."""
    try:
        data = json.loads(message)
    except ValueError:
        return message
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        return "; ".join(f"{e.get('message')} (code {e.get('code')})" for e in errors if isinstance(e, dict))
    return message


@contextlib.contextmanager
def readable_errors() -> Iterator[None]:
    try:
        yield
    except UpstreamFailure as exc:
        exc.message = f"Cloudflare: {cloudflare_message(exc.message)}"
        exc.args = (exc.message,)
        raise


class CloudflareAdaptor(OpenAIAdaptor):
    name = "cloudflare"
    limit_field = "max_tokens"  # what Workers AI reads, on both of its endpoints
    raw_sse = False  # the native endpoint streams its own format; errors need rewording
    default_base_url = "https://api.cloudflare.com/client/v4"
    supports: ClassVar[frozenset[str]] = frozenset({CHAT, EMBEDDINGS})

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        super().__init__(channel, http)
        self.account = str(channel.settings.get("account_id") or "").strip()
        self.native = str(channel.settings.get("api") or "openai") == "native"
        self.ai = f"{self.base_url}/accounts/{self.account}/ai"

    def _check(self) -> None:
        if not self.account:
            raise UpstreamFailure("Cloudflare channel has no account_id setting", kind=FailureKind.FATAL)

    def url(self, path: str, upstream_model: str) -> str:
        return f"{self.ai}/v1{path}"

    async def complete(self, request: ChatRequest) -> ChatResult:
        self._check()
        with readable_errors():
            if self.native:
                return await self._native_complete(request)
            return await super().complete(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        self._check()
        with readable_errors():
            chunks = self._native_stream(request) if self.native else super().stream(request)
            async for chunk in chunks:
                yield chunk

    async def embed(self, request: JSONRequest) -> JSONResult:
        self._check()
        # Workers AI's OpenAI-compatible endpoint answers floats whatever it is asked: encode here.
        wanted = request.body.get("encoding_format")
        body = {k: v for k, v in request.body.items() if k != "encoding_format"}
        with readable_errors():
            result = await super().embed(replace(request, body=body))
        if wanted != "base64":
            return result
        data = [dict(item, embedding=embedding_as_requested(item["embedding"], wanted))
                if isinstance(item, dict) and isinstance(item.get("embedding"), list) else item
                for item in result.body.get("data") or []]
        # A new plain dict: the upstream's own text (RawChunk.raw) must not be what is relayed.
        return JSONResult(body={**result.body, "data": data}, usage=result.usage)

    # The native endpoint -----------------------------------------------------------------

    def _native_body(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        messages = []
        for m in body.get("messages") or []:
            if any(p.get("type") == "image_url" for p in content_parts(m.get("content"))):
                raise bad_request("Cloudflare's native endpoint takes no images here; use api=openai", "messages")
            item: dict[str, Any] = {"role": m.get("role"), "content": content_text(m.get("content"))}
            if m.get("tool_call_id"):
                item["tool_call_id"] = m["tool_call_id"]
            messages.append(item)
        out: dict[str, Any] = {"messages": messages, "stream": stream}
        if limit := max_tokens(body):
            out["max_tokens"] = limit
        for key in ("temperature", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty"):
            if isinstance(body.get(key), int | float):
                out[key] = body[key]
        if tools := function_tools(body):
            out["tools"] = tools
        return out

    def _native_url(self, model: str) -> str:
        return f"{self.ai}/run/{model}"

    async def _native_failure(self, response: httpx.Response) -> UpstreamFailure:
        content = (await response.aread()).decode("utf-8", "replace")
        retry = response.headers.get("retry-after")
        return UpstreamFailure(content[:1000] or f"HTTP {response.status_code}", kind=classify(response.status_code),
                               status=response.status_code, retry_after=float(retry) if retry and retry.isdigit() else None,
                               error_type="invalid_request_error")

    async def _native_complete(self, request: ChatRequest) -> ChatResult:
        with transport_errors():
            response = await self.http.post(self._native_url(request.upstream_model), headers=self.headers,
                                            json=self._native_body(request.body, False))
            if response.status_code >= 400:
                raise await self._native_failure(response)
            data = loads(await response.aread(), "Cloudflare's answer")
        result = data.get("result") or {}
        calls = [tool_call("", c.get("name", ""), c.get("arguments") or {}) for c in result.get("tool_calls") or []]
        usage = Usage.from_openai(result.get("usage"))
        body = OpenAIWriter(request.model, request.request_id).completion(
            text=result.get("response") or "", tool_calls=calls, reasoning="",
            finish_reason="tool_calls" if calls else "stop", usage=usage)
        return ChatResult(body=body, usage=usage)

    async def _native_stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        writer = OpenAIWriter(request.model, request.request_id)
        usage: Usage | None = None
        calls = 0
        done = False
        with transport_errors():
            async with self.http.stream("POST", self._native_url(request.upstream_model), headers=self.headers,
                                        json=self._native_body(request.body, True)) as response:
                if response.status_code >= 400:
                    raise await self._native_failure(response)
                yield writer.chunk({"role": "assistant", "content": ""})
                async for _event, raw in sse_events(response):
                    if raw.strip() == "[DONE]":
                        done = True
                        break
                    data = loads(raw, "a Cloudflare stream event")
                    if "error" in data:
                        raise UpstreamFailure(f"Cloudflare: {data['error']}", kind=FailureKind.RETRY)
                    if data.get("response"):
                        yield writer.chunk({"content": data["response"]})
                    for call in data.get("tool_calls") or []:
                        chunk = tool_call("", call.get("name", ""), call.get("arguments") or {})
                        yield writer.chunk({"tool_calls": [dict(chunk, index=calls)]})
                        calls += 1
                    usage = Usage.from_openai(data.get("usage")) or usage
        if not done:
            raise UpstreamFailure("Cloudflare's stream ended before [DONE]", kind=FailureKind.RETRY)
        yield writer.chunk({}, "tool_calls" if calls else "stop")
        if usage is not None:
            yield writer.usage_chunk(usage)
